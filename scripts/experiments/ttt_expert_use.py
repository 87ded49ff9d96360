#!/usr/bin/env python3
"""Expert use per layer before and after test-time training on a shifted stream (CPU, the shipped model).

    python3 scripts/experiments/ttt_expert_use.py [--bin build/wattmoe] [--data-dir data] [--out results/cpu-kjv-small-ttt-use]

Two `wattmoe run`s of models/kjv-small on the first 32,768 tokens of kjv.test.noise10 (10% character noise), top-2
routing, windows of 128: `static.json` without adaptation and `ttt.json` with the tuned TTT of docs/results.md
(router, norms, LoRA rank 8, AdamW; the flags of scripts/device/ttt_energy.sh). Each summary has the expert counts of
the whole run and of its first and last --compare-windows (64) windows, the matrices that
`scripts/experiments/figures.py` draws as heatmaps (ttt_expert_use.png). Paths are relative to the repository root
(the script runs there); meta.json has the commit, date and commands. Nothing here is energy: no plant, no budget.
"""
import datetime, json, os, shlex, sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattmoe_cli import experiment_args, git_commit, ttt_recipe, wattmoe_json  # noqa: E402  (the one place the CLI is called)

TOKENS, COMPARE = 32768, 64
TTT = ttt_recipe(SRC)  # the tuned recipe of docs/results.md


def main():
    ap = experiment_args(__doc__, os.path.join("results", "cpu-kjv-small-ttt-use"))
    a = ap.parse_args()
    os.chdir(SRC)
    os.makedirs(a.out, exist_ok=True)
    data = os.path.join(a.data_dir, "kjv.test.noise10.txt")
    base = ["run", "--model", a.model, "--data", data, "--max-tokens", str(TOKENS), "--compare-windows", str(COMPARE)]
    cmds = {}
    for name, extra in (("static", []), ("ttt", TTT)):
        out, cmds[name] = wattmoe_json(a.bin, base + extra, "ttt_expert_use.py")
        with open(os.path.join(a.out, f"{name}.json"), "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"ttt_expert_use.py: {name}: bits/byte {out['bits_per_byte']:.4f}", file=sys.stderr)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump({"command": "python3 scripts/experiments/ttt_expert_use.py " + shlex.join(sys.argv[1:]),
                   "commit": git_commit(SRC), "date": datetime.date.today().isoformat(), "device": "cpu",
                   "compare_windows": COMPARE, "tokens": TOKENS, "label": "computed on the CPU (no energy)",
                   "commands": cmds}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
