"""model.eval equals `wattmoe eval` on the same text and options, bits per byte exactly; forward's NumPy arrays."""
import numpy as np
import pytest

import wattmoe
from conftest import MODEL

# Wall-clock fields: the only ones that may differ between two evaluations of the same text.
TIMING = {"seconds", "tokens_per_s"}


def same_except(a, b, skip):
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


@pytest.mark.parametrize("policy, flags", [
    (None, []),
    ({"policy": "top_p", "top_p": 0.7, "k_max": 2}, ["--policy", "top_p", "--route-top-p", "0.7", "--k-max", "2"]),
])
def test_eval_equals_cli(model, cli, text_file, policy, flags):
    ref = cli.json("eval", "--model", MODEL, "--data", text_file, "--seq", 64, *flags)
    got = model.eval(text_file, policy=policy, seq=64)
    assert got["bits_per_byte"] == ref["bits_per_byte"]  # exactly: the same library on the same tokens
    assert same_except(got, ref, TIMING | {"model"}), (got, ref)
    # The text itself (a str) scores the same as the file holding it.
    from_text = model.eval(text_file.read_text(), policy=policy, seq=64)
    assert from_text["bits_per_byte"] == ref["bits_per_byte"] and from_text["data"] == "<text>"


@pytest.mark.parametrize("experts", ["fp8", "int8"])
def test_expert_precision_equals_cli(cli, text_file, experts):
    ref = cli.json("eval", "--model", MODEL, "--data", text_file, "--seq", 64, "--expert-precision", experts)
    m = wattmoe.Model.load(MODEL, expert_precision=experts)
    assert m.device["expert_precision"] == experts
    got = m.eval(text_file, seq=64)
    assert got["bits_per_byte"] == ref["bits_per_byte"] and got["expert_precision"] == experts
    with pytest.raises(wattmoe.Error, match="^--expert-precision fp4: expected bf16, fp8 or int8$"):
        wattmoe.Model.load(MODEL, expert_precision="fp4")


def test_load_default_model_is_the_shipped_one(monkeypatch):
    monkeypatch.delenv("WATTMOE_MODEL", raising=False)
    assert wattmoe.default_model_dir() == str(MODEL)
    m = wattmoe.Model.load()
    assert m.config["num_local_experts"] > 1 and m.device["device"] == "cpu"
    monkeypatch.setenv("WATTMOE_MODEL", "/nonexistent/model")
    with pytest.raises(wattmoe.Error, match="/nonexistent/model"):
        wattmoe.Model.load()


def test_encode_decode(model):
    ids = model.encode("In the beginning")
    assert ids.dtype == np.int32 and list(ids) == list(b"In the beginning")
    assert model.decode(ids) == "In the beginning"


def test_forward_arrays(model):
    ids = model.encode("and the lord said unto moses")
    out = model.forward(np.stack([ids, ids[::-1].copy()]))
    S, V, E = len(ids), model.config["vocab_size"], model.config["num_local_experts"]
    assert out["logits"].shape == (2, S, V) and out["logits"].dtype == np.float32
    moe = [p for p in out["router_probs"] if p is not None]
    assert moe and all(p.shape == (2, S, E) for p in moe)
    np.testing.assert_allclose(moe[0].sum(-1), 1.0, rtol=1e-5)
    k = model.config["num_experts_per_tok"]
    experts = [e for e in out["experts"] if e is not None]
    assert all(e.shape == (2, S, k) and e.min() >= 0 and e.max() < E for e in experts)
    # The chosen experts are the top-k of the probabilities (the model's own routing, no policy).
    top = np.argsort(-moe[0], axis=-1, kind="stable")[..., :k]
    assert (np.sort(top, -1) == np.sort(experts[0], -1)).all()
    # The arrays own their memory: another forward does not change them; a [seq] input is the batch's first row.
    first = out["logits"].copy()
    one = model.forward(ids)
    assert (out["logits"] == first).all()
    np.testing.assert_allclose(one["logits"], first[0], rtol=1e-5, atol=1e-5)
