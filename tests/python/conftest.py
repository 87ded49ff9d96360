"""Shared fixtures of the Python package's tests (ctest label `python`): the package as built (PYTHONPATH, set by
tests/CMakeLists.txt), the shipped model, the `wattmoe` binary of the same build (WATTMOE_BIN) to compare against,
and a small text the model knows (the one tests/cli/run.sh uses)."""
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

import wattmoe

SOURCE = Path(__file__).resolve().parents[2]
MODEL = SOURCE / "models" / "kjv-small"


@pytest.fixture(scope="session")
def model():
    return wattmoe.Model.load(MODEL)


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    r = random.Random(7)
    words = ("and the lord said unto moses that he should go up into the mount of god and speak unto the "
             "people").split()
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(" ".join(r.choice(words) for _ in range(1200)) + "\n")
    return path


class Cli:
    """The wattmoe binary: run(args) -> CompletedProcess; json(args) -> the JSON it prints with --json."""

    def __init__(self, path):
        self.path = path

    def run(self, *args, check=True):
        env = {k: v for k, v in os.environ.items() if k != "WATTMOE_LOG"}
        p = subprocess.run([self.path, *map(str, args)], capture_output=True, text=True, env=env)
        if check and p.returncode != 0:
            raise AssertionError(f"wattmoe {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
        return p

    def json(self, *args):
        return json.loads(self.run(*args, "--json").stdout)

    def error(self, *args):
        """The one-line error of a failing command, without its 'wattmoe: error: ' prefix."""
        p = self.run(*args, check=False)
        assert p.returncode != 0, f"wattmoe {' '.join(map(str, args))} succeeded"
        line = [l for l in p.stderr.splitlines() if l.startswith("wattmoe: error: ")][-1]
        return line[len("wattmoe: error: "):]


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("WATTMOE_BIN")
    if not path:
        pytest.skip("WATTMOE_BIN (the wattmoe binary to compare with) is not set")
    return Cli(path)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]
