#!/usr/bin/env python3
"""The ladder's expert-tier level (--ladder-tier fp8) against the ladder without it, under power budgets that knob
control alone cannot hold (CPU; energy SIMULATED, bits/byte computed on the CPU with the experts as each window ran).

    python3 scripts/experiments/sim_ladder_tier.py [--bin build/wattmoe] [--data-dir data]
                                                   [--out results/sim-ladder-tier] [--tokens 16384] [--table-only]

models/kjv-small on kjv.test (its first --tokens tokens) with the simulated plant's defaults (Mixtral-shaped experts,
16 streams a window). The budgets, BUDGETS_W, were picked on kjv.val before any test run: the unbudgeted model draws
~300 W there, knob control's cheapest end ~278 W and top-1 ~250 W, so 280 W is inside knob control's reach, 265 W
between knob control and top-1 (where the tier level matters) and 250 W at top-1. For each budget: the default
ladder ("none") and the ladder with the fp8 level ("fp8").

Records in --out: runs.jsonl (one line per run: name, command, the summary without its expert matrices),
windows.jsonl (per window: power, J, bits/token, experts/token, the controller's u, rung and expert tier),
meta.json, table.md (from the records: --table-only).
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattmoe_cli import experiment_args, read_jsonl, wattmoe_json, write_records, write_table  # noqa: E402

BUDGETS_W = (280, 265, 250)
TIERS = ("none", "fp8")
WINDOW_KEYS = ("window", "tokens", "bits_per_token", "experts_per_token", "sim_power_w", "sim_step_j", "sim_step_s")


def experiment(a):
    test = ["--model", a.model, "--data", os.path.join(a.data_dir, "kjv.test.txt"), "--max-tokens", str(a.tokens)]
    runs, windows = [], []
    tmp = os.path.join(a.out, "window.tmp.jsonl")
    for budget in BUDGETS_W:
        for tier in TIERS:
            name = f"b{budget}_{tier}"
            extra = ["--power-budget-w", str(budget)] + (["--ladder-tier", tier] if tier != "none" else [])
            out, cmd = wattmoe_json(a.bin, ["run", *test, *extra, "--log", tmp], "sim_ladder_tier.py")
            for k in [k for k in out if k.startswith("expert_counts")]:
                del out[k]
            runs.append({"name": name, "command": cmd, "summary": out})
            for w in read_jsonl(tmp, "sim_ladder_tier.py"):
                c = w["control"]
                windows.append({"run": name, **{k: w[k] for k in WINDOW_KEYS}, "u": c["u"], "rung": c["rung"],
                                "expert_tier": c["expert_tier"], "batch_scale": c["batch_scale"]})
            print(f"sim_ladder_tier.py: {name}: bits/byte {out['bits_per_byte']:.4f}, "
                  f"{out['plant']['mean_power_w']:.1f} W (simulated)", file=sys.stderr)
    os.remove(tmp)
    write_records(a.out, "sim_ladder_tier.py", {"runs.jsonl": runs, "windows.jsonl": windows}, device="cpu",
                  label="simulated plant (energy not measured); bits/byte computed", tokens=a.tokens,
                  budgets_w=list(BUDGETS_W))


def table(out):
    ws = {}
    for w in read_jsonl(os.path.join(out, "windows.jsonl"), "sim_ladder_tier.py"):
        ws.setdefault(w["run"], []).append(w)
    lines = ["| budget | ladder | held | mean W (error) | worst 4-window block | bits/byte | experts/token | "
             "mJ/token | windows at fp8 | tier switches (host s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in read_jsonl(os.path.join(out, "runs.jsonl"), "sim_ladder_tier.py"):
        s = r["summary"]
        seg, w, ctl = s["budget"]["segments"][0], ws[r["name"]], s["control"]
        fp8 = sum(x["expert_tier"] == "fp8" for x in w)
        lines.append(f"| {seg['target']:g} W | {ctl['ladder_tier'] or 'default'} | {'yes' if seg['held'] else 'no'} | "
                     f"{seg['mean']:.1f} ({100 * seg['mean_error']:+.1f}%) | ±{100 * seg['worst_block_error']:.1f}% | "
                     f"{s['bits_per_byte']:.4f} | {s['experts_per_token']:.3f} | "
                     f"{1e3 * s['plant']['joules_per_token']:.4f} | {fp8} of {len(w)} | "
                     f"{ctl['tier_switches']} ({ctl['tier_switch_s']:.2f}) |")
    return "\n".join(lines) + "\n"


def main():
    ap = experiment_args(__doc__, os.path.join("results", "sim-ladder-tier"))
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if not a.table_only:
        experiment(a)
    write_table(a.out, table(a.out))


if __name__ == "__main__":
    main()
