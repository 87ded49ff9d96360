#!/usr/bin/env python3
"""Static expert pruning by calibration use (as Lu et al. 2024 did for Mixtral) beside the dynamic routing policies,
on the shipped model and the CPU.

    python3 scripts/experiments/static_pruning.py [--bin build/wattmoe] [--data-dir data] [--out results/cpu-kjv-small-pruning]
    python3 scripts/experiments/static_pruning.py --table-only --out results/cpu-kjv-small-pruning

1. Calibration: `wattmoe eval` of the model's own top-2 on the first 65,536 tokens of kjv train (there is no
   separate tuning split; val is only ever reported) -> OUT/calibration.json, whose "expert_counts" are the
   per-layer (token, expert) counts.
2. Pruning, r = 1..4 of 8: `wattmoe eval --prune-least-used r --calibration OUT/calibration.json` on all of kjv val:
   in every MoE layer the r least-used experts of the calibration are masked (the `mask` rule, per layer) and each
   token takes the top-2 of the rest.
3. The dynamic policies on the same split: top-2, top-1, skip β, top-p, cost λ with step-aware re-pricing.
4. An ablation: r = 1's experts, but layer 0's expert 2 instead of its expert 7 (OUT/calibration_l0e2.json), the
   expert whose loss makes r = 2 collapse.
Rows already in OUT/records.jsonl are kept and not rerun (delete the folder for a fresh run).

Paths are relative to the repository root (the script runs there).
Quality (bits/byte, experts/token) is computed; the energy column is ANALYTIC: the cost model's expected expert
energy per token (a fixed weight-read part per expert activated in a 2,048-token step plus a per-token part), as if
every expert were Mixtral-shaped (--expert-shape 4096x14336, as in docs/results.md's static routing curve), relative
to top-2. Nothing is measured. Every eval's JSON goes to OUT/records.jsonl (one line per row, with its label and
command); OUT/meta.json has the commit, the date and this command; the markdown table goes to OUT/table.md and stdout.
"""
import datetime, json, os, shlex, sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattmoe_cli import calibration, experiment_args, git_commit, require_inputs, wattmoe_json, write_table  # noqa: E402  (the one place the CLI is called)
SHAPE = ["--expert-shape", "4096x14336"]
DYNAMIC = [("top-2", []), ("top-1", ["--k-max", "1"]),
           ("skip β 0.5", ["--policy", "skip", "--beta", "0.5"]), ("skip β 0.7", ["--policy", "skip", "--beta", "0.7"]),
           ("top-p 0.7", ["--policy", "top_p", "--route-top-p", "0.7"]), ("top-p 0.9", ["--policy", "top_p", "--route-top-p", "0.9"]),
           ("cost λ 1 reuse 2", ["--policy", "cost", "--lambda", "1", "--reuse-min-tokens", "2"])]


def fail(msg):
    print(f"static_pruning.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def wattmoe(binary, args):
    return wattmoe_json(binary, args, "static_pruning.py")


def run(a):
    """Every row not yet in OUT/records.jsonl (finished rows are kept, not rerun; the calibration likewise)."""
    model, val = a.model, os.path.join(a.data_dir, "kjv.val.txt")
    cal_path, rec_path, meta_path = (os.path.join(a.out, n) for n in ("calibration.json", "records.jsonl", "meta.json"))
    meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
    if not os.path.isfile(cal_path):
        meta["calibration_command"] = calibration(a.bin, model, a.data_dir, cal_path, "static_pruning.py")
    # The ablation behind r = 2's collapse: r = 1's experts plus only layer 0's expert 2 (the calibration's counts
    # with that one set to 0, so it is layer 0's least used; the other layers prune what r = 1 prunes).
    ablation_path = os.path.join(a.out, "calibration_l0e2.json")
    if not os.path.isfile(ablation_path):
        cal = json.load(open(cal_path))
        cal["expert_counts"]["0"][2] = 0
        cal["note"] = "calibration.json with layer 0 expert 2's count set to 0 (static_pruning.py's ablation)"
        with open(ablation_path, "w") as f:
            json.dump(cal, f, indent=1)
            f.write("\n")
    rows = [("dynamic", label, args) for label, args in DYNAMIC]
    rows += [("static pruning", f"prune r={r}", ["--prune-least-used", str(r), "--calibration", cal_path])
             for r in range(1, 5)]
    rows.append(("ablation", "prune r=1, layer 0 expert 2 instead of 7",
                 ["--prune-least-used", "1", "--calibration", ablation_path]))
    done = {json.loads(line)["label"] for line in open(rec_path) if line.strip()} if os.path.isfile(rec_path) else set()
    with open(rec_path, "a") as f:
        for kind, label, args in rows:
            if label in done:
                continue
            out, cmd = wattmoe(a.bin, ["eval", "--model", model, "--data", val] + SHAPE + args)
            out.update({"label": label, "kind": kind, "command": cmd, "energy_label": "analytic"})
            f.write(json.dumps(out) + "\n")
            f.flush()
            print(f"static_pruning.py: {label}: bits/byte {out['bits_per_byte']:.4f}", file=sys.stderr)
    meta.update({"command": "python3 scripts/experiments/static_pruning.py " + shlex.join(sys.argv[1:]),
                 "commit": git_commit(SRC), "date": datetime.date.today().isoformat(), "device": "cpu"})
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def table(out):
    path = os.path.join(out, "records.jsonl")
    if not os.path.isfile(path):
        fail(f"missing record {path}")
    recs = [json.loads(line) for line in open(path) if line.strip()]
    base = next((r for r in recs if r["label"] == "top-2"), None)
    if base is None:
        fail(f"{path}: no top-2 row")
    lines = ["| kind | routing | bits/byte | vs top-2 | experts/token | experts left per layer | expert energy vs top-2 "
             "(analytic) | pruned experts per layer (calibration) |", "|---|---|---|---|---|---|---|---|"]
    for r in recs:
        pruned = (r["routing"].get("pruned") or {}).get("layers", {})
        left = f"{8 - len(next(iter(pruned.values())))}" if pruned else "8"
        lines.append(
            f"| {r['kind']} | {r['label']} | {r['bits_per_byte']:.4f} | "
            f"{100 * (r['bits_per_byte'] / base['bits_per_byte'] - 1):+.2f}% | {r['experts_per_token']:.3f} | "
            f"{left} | {r['expert_j_per_token'] / base['expert_j_per_token']:.3f} (analytic) | "
            f"{'; '.join(f'L{l}: {v}' for l, v in pruned.items()) or '–'} |")
    text = "\n".join(lines) + "\n"
    write_table(out, text)


def main():
    ap = experiment_args(__doc__, os.path.join("results", "cpu-kjv-small-pruning"))
    ap.add_argument("--table-only", action="store_true", help="only the table, from OUT/records.jsonl")
    a = ap.parse_args()
    os.chdir(SRC)  # every path (and every command recorded) is relative to the repository root
    os.makedirs(a.out, exist_ok=True)
    if not a.table_only:
        require_inputs((a.bin, os.path.join(a.data_dir, "kjv.val.txt"), os.path.join(a.data_dir, "kjv.train.txt")),
                       a.data_dir, "static_pruning.py")
        run(a)
    table(a.out)


if __name__ == "__main__":
    main()
