"""natural_shift.png for scripts/experiments/figures.py: test-time training on natural domain shifts, from the records
of scripts/experiments/natural_shift.py (tuning.jsonl, runs.jsonl, windows.jsonl, meta.json; aggregated by
natural_shift.results, the same numbers as its table.md).

  left   bits/byte per held-out domain: unadapted, TTT on every window (full), the cheap trigger setting, batch-level
  right  relative gain of each setting against its adaptation time (share of inference), with the goals' lines

Labelled "measured on the CPU (bits/byte; no energy)" in the title and the footer.
"""
import os

import natural_shift

SETTINGS = (("static", "unadapted", "0.6"), ("full", "TTT every window", "C3"),
            ("cheap", "cheap (a trigger, no guard)", "C1"), ("batch4", "batch of 4 windows", "C0"))


def files(records):
    return [os.path.join(records, n) for n in ("tuning.jsonl", "runs.jsonl", "windows.jsonl", "meta.json")]


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record. Draws natural_shift.png."""
    for p in files(records):
        need(p)
    meta, _, res = natural_shift.results(records)
    plt = fig_maker.plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6))
    doms = natural_shift.HELD_OUT
    w = 0.2
    for i, (n, label, color) in enumerate(SETTINGS):
        ax.bar([j + (i - 1.5) * w for j in range(len(doms))], [res[(d, n)]["bpb"] for d in doms], w, color=color,
               label=label)
    ax.set_xticks(range(len(doms)))
    ax.set_xticklabels(doms, fontsize=8)
    ax.set_ylabel("bits/byte (test split, lower is better)", fontsize=8)
    ax.set_title("held-out domains, before and after adaptation", fontsize=9)
    ax.legend(fontsize=7)
    for n, label, color in SETTINGS[1:]:
        bx.plot([100 * res[(d, n)]["adapt_infer"] for d in doms], [100 * res[(d, n)]["gain"] for d in doms], "o",
                color=color, label=label)
        for d in doms:
            bx.annotate(d, (100 * res[(d, n)]["adapt_infer"], 100 * res[(d, n)]["gain"]), fontsize=6, color=color)
    bx.axhline(10, color="k", ls="--", lw=0.8, label="goal: ≥ 10% lower bits/byte")
    bx.axvline(10, color="k", ls=":", lw=0.8, label="goal: ≤ 10% overhead")
    bx.set_xscale("symlog", linthresh=10)
    bx.set_xlim(left=0)
    bx.set_xlabel("adaptation time / inference time (%)", fontsize=8)
    bx.set_ylabel("bits/byte gain (%)", fontsize=8)
    bx.set_title("gain against overhead, per domain", fontsize=9)
    bx.legend(fontsize=7)
    for a in (ax, bx):
        a.tick_params(labelsize=7)
    fig.suptitle(f"{meta['model']} (trained on prose) on natural shifts with test-time training, first "
                 f"{meta['test_tokens']} tokens of each test split (measured on the CPU; no energy)", fontsize=10)
    fig.text(0.01, 0.005, f"card: CPU (no device) · {meta['date']} · idle power: n/a · {meta['label']} · knobs chosen "
             f"on the val splits (full = {meta['chosen']['full']}, cheap = {meta['chosen']['cheap']}) · records: "
             f"{rel(records)} (commit {meta['commit']})", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig_maker.save(fig, "natural_shift.png", files(records), "bits/byte before and after TTT on natural domain "
                   "shifts, gain against adaptation overhead", "measured on the CPU (no energy)")
