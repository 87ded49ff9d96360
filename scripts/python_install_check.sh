#!/usr/bin/env bash
# `pip install .` in a fresh virtualenv, then a smoke test of the installed package outside the source tree: the
# shipped model found without a path, an evaluation, a budgeted run's first records, an EnergyMeter window on the
# simulated GPU, an error. Not part of scripts/test.sh (CI): pip builds the whole engine again, 416 s and 630 s on this
# workplace's 2-core machine with a cold compiler cache (2026-12-06, shared with other builds), far over the few
# minutes CI can spare; the package itself is tested there from the build tree (ctest label `python`).
#   scripts/python_install_check.sh [pip install options...]   e.g. -C cmake.define.WATTMOE_CUDA=OFF
# Uses ccache when installed (CCACHE_DISABLE=1 measures a cold build). Needs python3-venv, PyPI and the Debian
# packages of scripts/install_deps.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install_deps.sh"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_pip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
launcher=()
command -v ccache >/dev/null && launcher=(-C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache
                                          -C cmake.define.CMAKE_CUDA_COMPILER_LAUNCHER=ccache)
start=$(date +%s)
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "${launcher[@]}" "$@" "$root"
echo "python_install_check: pip install . took $(( $(date +%s) - start )) s"
cd "$tmp"  # not the source tree: the installed package, its module and its model
env -u WATTMOE_MODEL WATTMOE_LOG=warn "$tmp/venv/bin/python" - <<'PY'
import pathlib, wattmoe
m = wattmoe.Model.load()
assert pathlib.Path(m.dir).is_relative_to(pathlib.Path(wattmoe.__file__).parent), m.dir  # the installed model
e = m.eval("In the beginning God created the heaven and the earth. " * 20)
assert 0 < e["bits_per_byte"] < 8, e
records = []
for r in m.run("and the lord said unto moses " * 100, power_budget=300):
    records.append(r)
    if len(records) == 3:
        break
assert [r["window"] for r in records] == [0, 1, 2]
meter = wattmoe.EnergyMeter("sim")
with meter.window("idle") as w:
    meter.sim_idle(1.0)
assert w["joules"] > 0
try:
    m.eval("x")
    raise SystemExit("no error for a one-byte text")
except wattmoe.Error as err:
    assert "need at least 2" in str(err)
print(f"python_install_check: wattmoe {wattmoe.__version__} installed and working ({m.dir}, bits/byte "
      f"{e['bits_per_byte']:.3f})")
PY
