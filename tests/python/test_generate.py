"""model.generate samples as `wattmoe generate` does (the serving engine's sampler), bills energy, holds a budget."""
import pytest

import wattmoe
from conftest import MODEL


@pytest.mark.parametrize("temperature, seed", [(0.0, 0), (0.8, 5)])
def test_generate_equals_cli(model, cli, temperature, seed):
    prompt = "In the beginning"
    out = cli.run("generate", "--model", MODEL, "--prompt", prompt, "--max-new-tokens", 40, "--temperature", temperature,
                  "--seed", seed).stdout
    got = model.generate(prompt, max_new=40, temperature=temperature, seed=seed)
    assert prompt + got["text"] + "\n" == out
    assert got["completion_tokens"] == 40 and got["finish_reason"] == "length"
    assert got["energy_j"] > 0 and got["engine"]["energy_source"] == "simulated"


def test_generate_budget_and_context(model):
    held = model.generate("And God said", max_new=30, power_budget=200, policy={"expert_shape": "4096x14336"})
    assert held["completion_tokens"] == 30 and held["experts_per_token"] > 0
    with pytest.warns(UserWarning, match="the context holds 128 tokens"):
        cut = model.generate("x" * 100, max_new=60)
    assert cut["completion_tokens"] == 128 - 100


def test_generate_errors(model):
    with pytest.raises(wattmoe.Error, match="generate: the prompt has 200 tokens but the context holds 128"):
        model.generate("x" * 200, max_new=5)
    with pytest.raises(wattmoe.Error, match="generate: the prompt is empty"):
        model.generate("", max_new=5)
    with pytest.raises(wattmoe.Error, match="top_p must be in"):
        model.generate("a", top_p=0)
