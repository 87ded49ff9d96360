"""ttt_time.png for scripts/experiments/figures.py: where test-time training's time goes on the GPU, before and after
each change of CHANGES, from the records of scripts/device/ttt_time.sh in RECORDS/<change>/ttt_time/ (a later
session's change names its folder under the source tree's results/ instead; one H100 machine per change; NAME-base =
the binary before the change, NAME-new and NAME-new2 = two runs of the binary after it). One row per change:

  left   ms per window: inference without TTT, inference inside the TTT run (it includes the LoRA merge the adapted
         weights need), and adaptation; median over the runs with the min-max, per model and binary
  right  the adaptation's time by phase (the --ttt-time-phases runs), per model and binary

Timings only: labelled "no energy" in the footer.
"""
import json
import os
import statistics

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

MODELS = (("kjv-small", "kjv-small"), ("wm-medium", "medium"))
BINARIES = (("base", ("base",), "before"), ("new", ("new", "new2"), "after"))
MODES = ("nottt", "plain", "phases")
PHASES = (("backward", "C0"), ("optimizer", "C1"), ("grads", "C2"), ("guard", "C3"), ("loss", "C4"),
          ("weights", "C5"), ("forward", "C6"), ("other", "0.6"))


CHANGES = (("ttt-merge", "the grouped expert backward and LoRA merge", "2026-12-06"),
           ("ttt-device-step", "the optimizer step on the device", "2026-12-06"),
           ("ttt-gemm-split", "the grouped GEMM's prefetch and split K", "2026-12-06"),
           (os.path.join(SRC, "results", "h100-2026-12-07", "ttt-merged", "call3-final"),
            "the backward through the merged experts", "2026-12-07"))


def files(records):
    out = []
    for change, _, _ in CHANGES:
        d = os.path.join(records, change)
        out.append(os.path.join(d, "card.txt"))
        for m, _ in MODELS:
            for _, runs, _ in BINARIES:
                out += [os.path.join(d, "ttt_time", f"{m}-{r}.{mode}.json") for r in runs for mode in MODES]
    return out


def finish(axis, ticks, ylabel, title):
    """One panel's model/binary ticks (position, label), labels, title and legend."""
    axis.set_xticks([t for t, _ in ticks])
    axis.set_xticklabels([s for _, s in ticks], fontsize=8)
    axis.set_ylabel(ylabel, fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7)
    axis.tick_params(labelsize=7)


def draw_change(ax, bx, d, what):
    """One change's row: ms per window (ax) and adaptation by phase (bx) before and after it; returns the card."""
    load = lambda m, r, mode: json.load(open(os.path.join(d, "ttt_time", f"{m}-{r}.{mode}.json")))
    per_window = lambda s, key: 1e3 * s[key] / s["windows"]
    bars = (("inference, no TTT", "nottt", "infer_seconds", "0.75"),
            ("inference, TTT run", "plain", "infer_seconds", "C0"), ("adaptation", "plain", "adapt_seconds", "C3"))
    w, x, ticks = 0.25, 0, []
    for m, name in MODELS:
        for b, runs, when in BINARIES:
            for i, (label, mode, key, color) in enumerate(bars):
                v = [per_window(load(m, r, mode), key) for r in runs]
                med = statistics.median(v)
                ax.bar(x + (i - 1) * w, med, w, color=color, yerr=[[med - min(v)], [max(v) - med]], capsize=2,
                       label=label if x == 0 else None, hatch="//" if b == "base" else None, edgecolor="white")
            ticks.append((x, f"{name}\n{when}"))
            x += 1
    finish(ax, ticks, "ms per 128-token window (median, min-max)", f"{what}: per window (before: hatched)")
    x, ticks = 0, []
    for m, name in MODELS:
        for b, runs, when in BINARIES:
            ph = [load(m, r, "phases")["ttt"]["adapt_phases_s"] for r in runs]
            windows = load(m, runs[0], "phases")["windows"]
            bottom = 0.0
            for p, color in PHASES:
                v = statistics.median(1e3 * q.get(p, 0.0) / windows for q in ph)
                bx.bar(x, v, 0.6, bottom=bottom, color=color, label=p if x == 0 else None)
                bottom += v
            ticks.append((x, f"{name}\n{when}"))
            x += 1
    finish(bx, ticks, "adaptation ms per window, by phase (median)", f"{what}: where adaptation's time goes")
    return open(os.path.join(d, "card.txt")).readline().split(":", 1)[-1].split("(UUID")[0].strip()


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record. Draws ttt_time.png."""
    for p in files(records):
        need(p)
    plt = fig_maker.plt
    fig, axes = plt.subplots(len(CHANGES), 2, figsize=(13, 4.3 * len(CHANGES)))
    cards = {draw_change(ax, bx, os.path.join(records, change), what)
             for (ax, bx), (change, what, _) in zip(axes, CHANGES)}
    fig.suptitle("Test-time training on the GPU (bf16, fused kernels, router+norms+LoRA, skip β 0.5, 40 windows of "
                 "kjv.test.noise10): before and after each change", fontsize=10)
    dates = " / ".join(sorted({d for _, _, d in CHANGES}))
    fig.text(0.01, 0.005, f"{' / '.join(sorted(cards))} · {dates} · idle power: n/a · timings only (no energy)"
             " · "
             f"one machine per row for before and after · records:\n"
             f"{', '.join(rel(os.path.join(records, c)) for c, _, _ in CHANGES)}", fontsize=7,
             color="0.3")
    fig.tight_layout(rect=(0, 0.025, 1, 0.97))
    fig_maker.save(fig, "ttt_time.png", files(records), "TTT inference and adaptation ms per window before and "
                   "after the grouped expert backward, the device-side optimizer step, the grouped GEMM's prefetch "
                   "and split K and the backward through the merged experts, adaptation by phase",
                   "measured (timings, no energy)")
