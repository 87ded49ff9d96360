"""serve_tier.png for scripts/experiments/figures.py: `wattmoe serve` holding stepped power budgets on the wide model
(scripts/device/wide_random.json, 1.66 B parameters, 8 streams), with and without the ladder's fp8 tier level, from
bench/serve_bench.py's records in RECORDS/<run>/ of the RUNS below (one H100, one warm machine, consecutive runs):

  one row per run: the steps' power per 1 s window (NVML counter) against the target, the windows served on fp8
  experts shaded, and experts/token on the right axis

Measured energy (NVML counter) throughout; idle is the bench's own measurement in each run (its log's budget line).
"""
import json
import os
import re

RUNS = (("serve-fp8-0.4", "servetier.log", "tier level fp8; targets 0.9 and 0.4 of the range above idle"),
        ("serve-fp8-0.7", "servetier.log", "tier level fp8; targets 0.9 and 0.7"),
        ("serve-bf16-0.7", "servebf16.log", "no tier level (bf16 experts only); targets 0.9 and 0.7"))


def files(records):
    return [os.path.join(records, "card.txt")] + [os.path.join(records, run, name) for run, log, _ in RUNS
                                                   for name in ("serve_bench.jsonl", log)]


def windows(d):
    with open(os.path.join(d, "serve_bench.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("kind") == "window"]


def idle_w(log):
    with open(log) as f:
        m = re.search(r"budget: idle ([0-9.]+) W", f.read())
    if not m:
        raise SystemExit(f"fig_serve_tier: {log} has no 'budget: idle … W' line")
    return float(m.group(1))


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record. Draws serve_tier.png."""
    for p in files(records):
        need(p)
    date = re.search(r"\d{4}-\d{2}-\d{2}", os.path.abspath(records))
    with open(os.path.join(records, "card.txt")) as f:
        card = f.readline().split(":", 1)[-1].split("(UUID")[0].strip()
    plt = fig_maker.plt
    fig, axes = plt.subplots(len(RUNS), 1, figsize=(11, 8.2), sharex=True)
    idles = []
    for ax, (run, log, label) in zip(axes, RUNS):
        d = os.path.join(records, run)
        ws = windows(d)
        idle = idle_w(os.path.join(d, log))
        idles.append(f"{run} {idle:.1f} W")
        x = [w["window"] for w in ws]
        for w in ws:
            if w.get("expert_tier_bytes") == 1.0:
                ax.axvspan(w["window"] - 0.5, w["window"] + 0.5, color="C1", alpha=0.18, lw=0)
        ax.plot(x, [w["step_power_w"] for w in ws], color="C0", lw=1.2, label="power of the steps (W)")
        ax.step(x, [w["target_w"] if w["target_w"] is not None else float("nan") for w in ws], where="mid",
                color="k", ls="--", lw=0.9, label="target (W)")
        ax.axhline(idle, color="0.6", lw=0.8, ls=":", label=f"idle {idle:.1f} W")
        ax.set_ylabel("W", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        bx = ax.twinx()
        bx.plot(x, [w["experts_per_token"] for w in ws], color="C2", lw=0.9, label="experts/token (right)")
        bx.set_ylim(0.8, 2.1)
        bx.set_ylabel("experts/token", fontsize=8, color="C2")
        bx.tick_params(labelsize=7)
        if ax is axes[0]:
            handles = ax.get_legend_handles_labels()[0] + bx.get_legend_handles_labels()[0]
            handles.append(plt.Rectangle((0, 0), 1, 1, color="C1", alpha=0.18))
            ax.legend(handles, [h.get_label() for h in handles[:-1]] + ["windows on fp8 experts"], fontsize=6.5,
                      loc="lower left", ncol=5)
    axes[-1].set_xlabel("1 s window of the budget run (the first windows unconstrained)", fontsize=8)
    fig.suptitle("wattmoe serve under stepped power budgets, wide model (1.66 B parameters, bf16, 8 streams): the "
                 "ladder's fp8 tier level", fontsize=10)
    day = date.group(0) if date else "date unknown"
    fig.text(0.01, 0.005, f"{card} · {day} · idle per run: {', '.join(idles)} · measured (NVML energy counter)\n"
             f"records: {rel(records)}/{{{','.join(r for r, _, _ in RUNS)}}}", fontsize=6.5, color="0.3")
    fig.tight_layout(rect=(0, 0.035, 1, 0.97))
    fig_maker.save(fig, "serve_tier.png", files(records), "serve's power per window under stepped budgets on the "
                   "wide model with and without the fp8 tier level, the fp8 windows shaded, experts/token", "measured")
