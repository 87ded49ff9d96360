#!/usr/bin/env python3
"""scripts/experiments/equal_adaptation.py without running wattmoe: the tuning rule picks, at each adaptation level,
the lowest-energy knob within 1% of top-2's bits/byte at that level (else the lowest bits/byte); the ablations' TTT
flags are the recipe with one change; and --table-only on the committed records reproduces the committed table.md.
    python3 tests/experiments/equal_adaptation_test.py SOURCE_DIR
"""
import os, subprocess, sys, tempfile

src = sys.argv[1]
sys.path.insert(0, os.path.join(src, "scripts", "experiments"))
import equal_adaptation as ea  # noqa: E402


def rec(label, fam, ttt, bpb, energy):
    return {"section": "tune", "label": label, "family": fam, "ttt": ttt, "bits_per_byte": bpb,
            "expert_j_per_token": energy}


recs = [rec("top-2", "top-2", False, 4.00, 1.0), rec("top-2", "top-2", True, 3.00, 1.0),
        # without TTT: β 0.5 is within 1% (4.03 <= 4.04), β 0.7 is not; with TTT β 0.7 is (3.02 <= 3.03)
        rec("skip β 0.5", "skip", False, 4.03, 0.6), rec("skip β 0.7", "skip", False, 4.05, 0.5),
        rec("skip β 0.5", "skip", True, 3.01, 0.6), rec("skip β 0.7", "skip", True, 3.02, 0.5),
        # none within 1% at either level: the lowest bits/byte
        rec("prune a", "prune", False, 5.0, 0.9), rec("prune b", "prune", False, 4.9, 0.95),
        rec("prune a", "prune", True, 4.0, 0.9), rec("prune b", "prune", True, 4.5, 0.95)]
p = ea.picks(recs)
assert p[("skip", False)] == ("skip β 0.5", True), p
assert p[("skip", True)] == ("skip β 0.7", True), p
assert p[("prune", False)] == ("prune b", False), p
assert p[("prune", True)] == ("prune a", False), p
assert p[("top-2", False)] == ("top-2", True), p

# The ablations change the recipe in one place; groups without LoRA drop the LoRA flags.
router = ea.recipe_with(groups="router")
assert router[router.index("--ttt-groups") + 1] == "router" and "--lora-rank" not in router and \
    "--ttt-lr-lora" not in router, router
lr = ea.recipe_with(groups="all", drop=("--ttt-lr",), add=("--ttt-lr", "1e-3"))
assert lr.count("--ttt-lr") == 1 and lr[lr.index("--ttt-lr") + 1] == "1e-3" and "--lora-rank" in lr, lr
assert ea.recipe_with() == ea.TTT
assert ea.strip_ttt(["--seq", "32"] + ea.TTT) == (["--seq", "32"], ea.TTT)

# The committed table is made from the committed records alone.
records = os.path.join(src, "results", "cpu-kjv-small-ablations")
with tempfile.TemporaryDirectory() as tmp:
    for n in ("records.jsonl", "meta.json"):
        with open(os.path.join(records, n)) as f, open(os.path.join(tmp, n), "w") as g:
            g.write(f.read())
    subprocess.run([sys.executable, os.path.join(src, "scripts", "experiments", "equal_adaptation.py"),
                    "--table-only", "--out", tmp], check=True, capture_output=True)
    made = open(os.path.join(tmp, "table.md")).read().replace(tmp, "results/cpu-kjv-small-ablations")
    assert made == open(os.path.join(records, "table.md")).read(), "table.md is not what the records make"
print("equal_adaptation_test: tuning rule, ablation flags and table.md from the records: ok")
