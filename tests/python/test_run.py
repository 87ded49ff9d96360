"""model.run's records equal `wattmoe run --log`'s lines, its summary the CLI's summary, window by window."""
import json

import pytest

import wattmoe
from conftest import MODEL, read_jsonl

# Wall-clock measurements: the only fields that differ between two runs of the same command (the simulated plant
# runs in virtual time, so its power, energy and temperature repeat exactly).
RECORD_TIMING = {"infer_s", "adapt_s"}
SUMMARY_TIMING = {"infer_seconds", "adapt_seconds", "adapt_infer_ratio"}


def strip(d, keys):
    return {k: v for k, v in d.items() if k not in keys}


def test_budgeted_run_equals_cli(model, cli, text_file, tmp_path):
    cli.run("run", "--model", MODEL, "--data", text_file, "--expert-shape", "4096x14336", "--power-budget-w", 320,
            "--budget-schedule", "25:290", "--log", tmp_path / "cli.jsonl", "--summary", tmp_path / "cli.json")
    ref = read_jsonl(tmp_path / "cli.jsonl")
    run = model.run(text_file, power_budget=320, budget_schedule="25:290", policy={"expert_shape": "4096x14336"},
                    log=tmp_path / "py.jsonl")
    records = []
    for r in run:
        assert run.summary is None  # records arrive while the run goes on
        records.append(r)
    assert len(records) == len(ref) > 30
    assert [strip(r, RECORD_TIMING) for r in records] == [strip(r, RECORD_TIMING) for r in ref]
    assert records == read_jsonl(tmp_path / "py.jsonl")  # the records are the log's lines
    summary = json.loads((tmp_path / "cli.json").read_text())
    assert strip(run.summary, SUMMARY_TIMING) == strip(summary, SUMMARY_TIMING)
    assert records[-1]["control"]["target"] == 290 and run.summary["control"]["final_target"] == 290


def test_ladder_tier_run_equals_cli(model, cli, text_file, tmp_path):
    # A budget knob control alone cannot hold: the ladder's fp8 level re-quantises the experts (--ladder-tier).
    cli.run("run", "--model", MODEL, "--data", text_file, "--power-budget-w", 265, "--ladder-tier", "fp8",
            "--log", tmp_path / "cli.jsonl", "--summary", tmp_path / "cli.json")
    run = model.run(text_file, power_budget=265, ladder_tier="fp8")
    records = run.records()
    assert [strip(r, RECORD_TIMING) for r in records] == [strip(r, RECORD_TIMING) for r in read_jsonl(tmp_path / "cli.jsonl")]
    assert any(r["control"]["expert_tier"] == "fp8" for r in records)
    ctl = run.summary["control"]
    assert ctl["ladder_tier"] == "fp8" and ctl["tier_switches"] >= 1
    cli_ctl = json.loads((tmp_path / "cli.json").read_text())["control"]
    assert strip(ctl, {"tier_switch_s"}) == strip(cli_ctl, {"tier_switch_s"})  # the switch's host time is wall clock


def test_ttt_run_equals_cli(model, cli, text_file, tmp_path):
    cli.run("run", "--model", MODEL, "--data", text_file, "--max-tokens", 1024, "--ttt", "--ttt-lr", "0.01",
            "--ttt-groups", "router", "--log", tmp_path / "cli.jsonl", "--summary", tmp_path / "cli.json")
    run = model.run(text_file.read_text(), max_tokens=1024, ttt={"lr": 0.01, "groups": "router"})
    records = run.records()
    assert [strip(r, RECORD_TIMING) for r in records] == [strip(r, RECORD_TIMING) for r in read_jsonl(tmp_path / "cli.jsonl")]
    assert any(r["adapted"] for r in records) and run.summary["ttt"]["lr"] == 0.01


def test_leaving_the_loop_ends_the_run(model, text_file):
    run = model.run(text_file, power_budget=300)
    for r in run:
        if r["window"] == 2:
            break
    assert run.summary["windows"] == 3 and "interrupted" not in run.summary
    with pytest.raises(wattmoe.Error, match="iterated already"):
        iter(run)


def test_run_errors_carry_the_cli_message(model, cli, text_file):
    msg = cli.error("run", "--model", MODEL, "--data", text_file, "--power-budget-w", 300, "--energy-budget-j-per-token", 1)
    with pytest.raises(wattmoe.Error) as e:
        model.run(text_file, power_budget=300, energy_budget=1).records()
    assert str(e.value) == msg
    msg = cli.error("run", "--model", MODEL, "--data", text_file, "--budget-schedule", "5:300")
    with pytest.raises(wattmoe.Error) as e:
        model.run(text_file, budget_schedule="5:300").records()
    assert str(e.value) == msg
    with pytest.raises(wattmoe.Error, match="unknown run option 'power_budjet'"):
        model.run(text_file, power_budjet=300).records()
    with pytest.raises(wattmoe.Error, match="unknown ttt option 'learning_rate'"):
        model.run(text_file, ttt={"learning_rate": 1}).records()
