"""`wattmoe data tokenizer` against Hugging Face `tokenizers`: a BPE tokenizer trained here (on the project's docs and
text sources), loaded by both, must give the same ids for held-out text (other files, multilingual and whitespace
edge cases, special tokens) and decode back to the text. `tokenizers` is pinned in python/requirements.txt, which
the test virtualenv is made from (scripts/python_env.sh), so it is imported unconditionally: a missing package fails
this test rather than skipping it.
"""
import json
from pathlib import Path

import pytest
import tokenizers

import wattmoe
from conftest import SOURCE

TRAIN = sorted((SOURCE / "docs").glob("*.md")) + sorted((SOURCE / "src" / "text").glob("*.cpp"))
HELD_OUT_FILES = [SOURCE / "README.md", SOURCE / "CHANGELOG.md", SOURCE / "src" / "text" / "tokenizer.h"]
EDGE_CASES = [
    "",
    " ",
    "\n\n\n",
    "  leading and trailing  \t\n",
    "I'm sure they'll've done it — can't you?  It's 2026-12-06, 12:30 UTC; π≈3.14159.",
    "Grüße aus Köln! Ἐν ἀρχῇ ἦν ὁ λόγος. 日本語のテキスト。 Привет, мир! 🙂👍🏽 e\u0301",
    "text<|endoftext|>more text <|endoftext|>\n<|endoftext|><|endoftext|> tail",
    "<|endoftext",
    "tabs\tand\r\nCRLF\r\n and \u00a0nbsp\u3000ideographic space",
    "x" * 300 + " " + "ab" * 200,
]


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    j = cli.json("data", "tokenizer", "--train", *TRAIN, "--vocab", 1024, "--out", out)
    return out, j


def held_out_texts():
    texts = [p.read_text(encoding="utf-8") for p in HELD_OUT_FILES]
    cases = json.loads((SOURCE / "tests" / "fixtures" / "tokenizers" / "cases.json").read_text(encoding="utf-8"))
    return texts + cases["texts"] + EDGE_CASES


def test_result_json(trained):
    out, j = trained
    assert j["schema"] == "wattmoe.data.tokenizer/1"
    assert j["vocab_size"] == 1024 and j["merges"] == 1024 - 257
    assert j["special_tokens"] == {"<|endoftext|>": 256}
    assert j["train_bytes"] == sum(p.stat().st_size for p in TRAIN)
    assert not Path(str(out) + ".tmp").exists()


def test_ids_match_tokenizers(trained):
    out, _ = trained
    ours = wattmoe.Tokenizer.load(out)
    theirs = tokenizers.Tokenizer.from_file(str(out))
    assert ours.vocab_size == theirs.get_vocab_size() == 1024
    assert ours.eos_id == theirs.token_to_id("<|endoftext|>") == 256
    total = 0
    for i, text in enumerate(held_out_texts()):
        want = theirs.encode(text, add_special_tokens=False).ids
        got = ours.encode(text)
        assert got == want, f"held-out text {i} ({text[:60]!r}...): ids differ at {first_difference(got, want)}"
        assert ours.decode(got) == text == theirs.decode(want, skip_special_tokens=False)
        total += len(got)
    assert total > 10000  # the held-out text is not trivially small


def test_merges_compress_held_out_text(trained):
    out, _ = trained
    text = (SOURCE / "README.md").read_text(encoding="utf-8")
    assert len(wattmoe.Tokenizer.load(out).encode(text)) < 0.5 * len(text.encode())


def test_transformers_loads_it(trained):
    transformers = pytest.importorskip("transformers", reason="transformers is not in python/requirements.txt; "
                                       "pip install transformers to check PreTrainedTokenizerFast too")
    out, _ = trained
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(out), eos_token="<|endoftext|>")
    text = held_out_texts()[0]
    assert fast(text, add_special_tokens=False)["input_ids"] == wattmoe.Tokenizer.load(out).encode(text)
    assert fast.eos_token_id == 256


def test_trained_model_carries_its_tokenizer(cli, trained, tmp_path):
    """`train --tokenizer` puts the file beside the weights: every reader of the directory (wattmoe, tokenizers,
    transformers' AutoTokenizer) then encodes alike. A model too small for the vocabulary is refused, naming the file."""
    tok, _ = trained
    config = json.loads((SOURCE / "models" / "kjv-small" / "config.json").read_text())
    text = tmp_path / "train.txt"
    text.write_text(held_out_texts()[0], encoding="utf-8")
    args = ["train", "--preset", "tiny", "--tokenizer", tok, "--train", text, "--val", text, "--steps", 1, "--batch", 1,
            "--seq", 16]
    (tmp_path / "small.json").write_text(json.dumps(config))  # vocab_size 256
    msg = cli.error(*args, "--model-config", tmp_path / "small.json", "--out", tmp_path / "small")
    assert str(tok) in msg and "tokenizer vocabulary (1024) is larger than the model's (256)" in msg
    (tmp_path / "config.json").write_text(json.dumps({**config, "vocab_size": 1024}))
    model = tmp_path / "model"
    cli.run(*args, "--model-config", tmp_path / "config.json", "--out", model)
    assert (model / "tokenizer.json").read_bytes() == tok.read_bytes()
    sample = EDGE_CASES[4] + EDGE_CASES[5] + EDGE_CASES[6]
    want = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json")).encode(sample, add_special_tokens=False).ids
    assert wattmoe.Model.load(model).encode(sample).tolist() == want
    transformers = pytest.importorskip("transformers", reason="transformers is not in python/requirements.txt; "
                                       "pip install transformers to check AutoTokenizer too")
    auto = transformers.AutoTokenizer.from_pretrained(str(model))
    assert auto(sample, add_special_tokens=False)["input_ids"] == want and auto.eos_token_id == 256


def test_bad_input_is_an_error_naming_it(cli, tmp_path):
    missing = tmp_path / "missing.txt"
    assert str(missing) in cli.error("data", "tokenizer", "--train", missing, "--out", tmp_path / "t.json")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    assert cli.error("data", "tokenizer", "--train", bad, "--out", tmp_path / "t.json").startswith(
        f"{bad}: not valid UTF-8")
    good = tmp_path / "good.txt"
    good.write_text("hello world\n")
    assert "--vocab 100 is smaller" in cli.error("data", "tokenizer", "--train", good, "--vocab", 100,
                                                  "--out", tmp_path / "t.json")
    out = tmp_path / "no_such_dir" / "tokenizer.json"
    assert str(out) in cli.error("data", "tokenizer", "--train", good, "--out", out)
    assert not (tmp_path / "no_such_dir").exists() and not (tmp_path / "t.json").exists()


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"token {i}: {a[max(0, i - 3):i + 3]} vs {b[max(0, i - 3):i + 3]}"
    return f"length {len(a)} vs {len(b)}"
