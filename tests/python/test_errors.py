"""Bad input raises wattmoe.Error with the engine's message — the line the CLI prints after 'wattmoe: error: '."""
import pytest

import wattmoe
from conftest import MODEL


def test_same_messages_as_cli(model, cli, text_file, tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(wattmoe.Error) as e:
        wattmoe.Model.load(missing)
    assert str(e.value) == cli.error("eval", "--model", missing, "--data", text_file)
    with pytest.raises(wattmoe.Error) as e:
        model.eval(text_file, policy="nope")
    assert str(e.value) == cli.error("eval", "--model", MODEL, "--data", text_file, "--policy", "nope")
    with pytest.raises(wattmoe.Error) as e:
        model.eval(tmp_path / "absent.txt")
    assert str(e.value) == cli.error("eval", "--model", MODEL, "--data", tmp_path / "absent.txt")
    with pytest.raises(wattmoe.Error) as e:
        model.eval(text_file, policy={"policy": "top_p", "top_p": 1.5})
    assert str(e.value) == cli.error("eval", "--model", MODEL, "--data", text_file, "--policy", "top_p", "--route-top-p", 1.5)
    with pytest.raises(wattmoe.Error) as e:
        wattmoe.Model.load(MODEL, device="tpu")
    assert str(e.value) == cli.error("eval", "--model", MODEL, "--data", text_file, "--device", "tpu")


def test_option_types_and_values(model):
    with pytest.raises(wattmoe.Error, match="top_p: expected a number, got 'nan'"):
        model.eval("some text here", policy={"policy": "top_p", "top_p": float("nan")})
    with pytest.raises(wattmoe.Error, match="lambda: expected a number, got 'inf'"):
        model.eval("some text here", policy={"policy": "cost", "lambda": float("inf")})
    model.eval("some text here", policy={"policy": "budget", "budget_j": float("inf")})  # inf: no limit, as the CLI
    with pytest.raises(wattmoe.Error, match="seq: expected an integer >= 0 that fits, got -5"):
        model.eval("some text here", seq=-5)
    with pytest.raises(wattmoe.Error, match="max_tokens: expected an integer >= 0 that fits, got -5"):
        model.eval("some text here", max_tokens=-5)
    with pytest.raises(wattmoe.Error, match="k_max: expected an integer, got '2'"):
        model.eval("some text here", policy={"k_max": "2"})
    with pytest.raises(wattmoe.Error, match="unknown routing option 'lamda' \\(expected one of: policy, lambda"):
        model.eval("some text here", policy={"lamda": 1})
    with pytest.raises(wattmoe.Error, match="<text>: corpus has 1 tokens, need at least 2"):
        model.eval("x")
    with pytest.raises(wattmoe.Error, match="expected the text \\(str\\) or a path"):
        model.eval(b"bytes")
    with pytest.raises(wattmoe.Error, match="byte tokenizer: id 300"):
        model.decode([300])
