"""Option names: every key the package takes is a flag of the matching command (both read src/eval/option_table.h),
each old flag name's key still works with the same meaning, giving an old and a new name together is refused, and an
unknown key lists the known ones."""
import re

import pytest

import wattmoe
from conftest import MODEL

TEXT = "and the lord said unto moses that he should go up into the mount " * 40


def known_keys(call):
    """The keys an unknown key's error lists."""
    with pytest.raises(wattmoe.Error) as e:
        call()
    m = re.search(r"\(expected one of: (.*)\)$", str(e.value))
    assert m, str(e.value)
    return m.group(1).split(", ")


def cli_flags(cli, command):
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", cli.run(command, "--help").stdout))


@pytest.mark.parametrize("what, call, command, prefixes", [
    ("routing", lambda m: m.eval(TEXT, policy={"nope": 1}), "eval", ["--"]),
    ("eval", lambda m: m._core.eval(TEXT, None, {"nope": 1}, {}), "eval", ["--"]),  # Model.eval names its keywords
    ("run", lambda m: m.run(TEXT, nope=1).records(), "run", ["--", "--no-"]),
    ("ttt", lambda m: m.run(TEXT, ttt={"nope": 1}).records(), "run", ["--ttt-", "--"]),
    ("generate", lambda m: m.generate("a", nope=1), "serve", ["--", "--no-"]),
])
def test_every_key_is_a_flag(model, cli, what, call, command, prefixes):
    keys = known_keys(lambda: call(model))
    assert keys and "nope" not in keys
    flags = cli_flags(cli, command)
    for k in keys:
        assert any(p + k.replace("_", "-") in flags for p in prefixes), f"{what} key {k}: no such flag of {command}"


def test_unknown_keys_list_the_new_names(model):
    assert "route_top_p" in known_keys(lambda: model.eval(TEXT, policy={"top-p": 0.5}))
    run_keys = known_keys(lambda: model.run(TEXT, power_budjet=300).records())
    assert {"power_budget_w", "energy_budget_j_per_token", "allow_infeasible", "thermal_guard"} <= set(run_keys)
    assert "power_budget" not in run_keys  # old names work but are not advertised
    assert {"power_budget_w", "context"} <= set(known_keys(lambda: model.generate("a", power_budjet=1)))
    assert {"lr", "lora_rank", "time_phases"} <= set(known_keys(lambda: model.run(TEXT, ttt={"rl": 1}).records()))


def test_new_and_old_routing_keys(model, cli, text_file):
    ref = cli.json("eval", "--model", MODEL, "--data", text_file, "--seq", 64, "--policy", "top_p",
                   "--route-top-p", 0.6)
    for key in ("route_top_p", "top_p"):
        got = model.eval(text_file, seq=64, policy={"policy": "top_p", key: 0.6})
        assert got["bits_per_byte"] == ref["bits_per_byte"] and got["experts_per_token"] == ref["experts_per_token"]
    with pytest.raises(wattmoe.Error, match="^top_p is the old name of route_top_p: give one of them$"):
        model.eval(text_file, policy={"route_top_p": 0.6, "top_p": 0.6})


@pytest.mark.parametrize("new, old, value, unit", [("power_budget_w", "power_budget", 300, "W"),
                                                   ("energy_budget_j_per_token", "energy_budget", 0.5, "J/token")])
def test_new_and_old_run_keys(model, new, old, value, unit):
    summaries = []
    for key in (new, old):
        run = model.run(TEXT, max_tokens=512, **{key: value})
        run.records()
        summaries.append(run.summary)
    for s in summaries:
        assert s["budget"]["unit"] == unit and s["control"]["final_target"] == value
    assert summaries[0]["experts_per_token"] == summaries[1]["experts_per_token"]
    with pytest.raises(wattmoe.Error, match=f"^{old} is the old name of {new}: give one of them$"):
        model.run(TEXT, **{new: value, old: value}).records()


def test_new_and_old_generate_keys(model):
    for key in ("power_budget_w", "power_budget", "energy_budget_j_per_token", "energy_budget"):
        out = model.generate("And God said", max_new=5, **{key: 200 if "power" in key else 0.5})
        assert out["completion_tokens"] == 5
    with pytest.raises(wattmoe.Error, match="^energy_budget is the old name of energy_budget_j_per_token"):
        model.generate("a", energy_budget=1, energy_budget_j_per_token=1)
    with pytest.raises(wattmoe.Error, match="power_budget_w: expected a number, got 'nan'"):
        model.generate("a", power_budget_w=float("nan"))


def test_new_keys_reach_their_fields(model):
    # allow_infeasible: a budget below the plant's floor is refused without it and run with it.
    with pytest.raises(wattmoe.Error, match="allow-infeasible"):
        model.run(TEXT, max_tokens=256, power_budget_w=1).records()
    run = model.run(TEXT, max_tokens=256, power_budget_w=1, allow_infeasible=True)
    run.records()
    assert run.summary["control"]["final_target"] == 1
    # ttt's time_phases (--ttt-time-phases): the summary splits the adaptation time by phase.
    run = model.run(TEXT, max_tokens=256, ttt={"lr": 1e-3, "time_phases": True})
    run.records()
    assert "adapt_phases_s" in run.summary["ttt"]
