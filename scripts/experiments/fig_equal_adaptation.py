"""equal_adaptation.png and ttt_ablations.png for scripts/experiments/figures.py, from the records of
scripts/experiments/equal_adaptation.py (records.jsonl, meta.json; aggregated by equal_adaptation.summarise, the same
numbers as its table.md).

equal_adaptation.png
  left   bits/byte on kjv.test.noise10 against the ANALYTIC expert energy relative to static top-2, every family at its
         chosen knob: hollow without TTT, filled with TTT including the adaptation's (simulated) share, joined to a
         small mark at its inference-only energy; error bars min-max over the LoRA seeds; the seed's target region
         (≥ 20% less energy at < 5% bits/byte loss against static top-2) shaded, the 1% line dashed
  right  the same at equal adaptation: each point against top-2 at its own level (top-2 without TTT for the hollow,
         top-2 + TTT for the filled), the 1% line and the 20% cut marked
ttt_ablations.png
  left   bits/byte of each one-change ablation of the TTT recipe (top-2, LoRA seed 1), the no-TTT and clean-stream
         references as lines
  right  the adaptation's share of the run's time on this CPU

Labelled in the title and the footer: bits/byte computed on the CPU, energy ANALYTIC (adaptation share SIMULATED);
no card, no idle power.
"""
import os

import equal_adaptation as ea


def files(records):
    return [os.path.join(records, n) for n in ("records.jsonl", "meta.json")]


def footer(fig, meta, records, rel):
    fig.text(0.01, 0.005, f"card: none (CPU runs) · {meta.get('date', 'date not recorded')} · idle power: n/a · "
             "bits/byte computed on the CPU; energy ANALYTIC (cost model, experts as 4096x14336), adaptation's share "
             f"SIMULATED · records: {rel(records)} (commit {meta.get('commit', '?')})", fontsize=7, color="0.3")


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record."""
    for p in files(records):
        need(p)
    s = ea.summarise(records)
    pareto(fig_maker, s, records, rel)
    ablation_bars(fig_maker, s, records, rel)


def pareto(fig_maker, s, records, rel):
    plt, meta, rows = fig_maker.plt, s["meta"], s["test"]
    b0 = s["base"]["bits_per_byte"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6.4))
    colors = {fam: f"C{i}" for i, fam in enumerate(dict.fromkeys(x["family"] for x in rows))}
    knobs = list(dict.fromkeys((x["family"], x["knob"]) for x in rows))  # a family's 2nd knob: another marker
    marker = {k: "os^"[sum(1 for j in knobs[:i] if j[0] == k[0]) % 3] for i, k in enumerate(knobs)}
    ymax = b0 * 1.12
    rtop = max([100 * x["vs_top2_same_level"] for x in rows if 100 * x["vs_top2_same_level"] < 10] + [2]) * 1.3
    above = {id(ax): 0, id(bx): 0}
    for x in rows:
        c, (m, _, lo, hi) = colors[x["family"]], x["bpb"]
        label = f"{x['knob']}{' + TTT' if x['ttt'] else ''}"
        for axis, ex, ey, top, text in ((ax, x["energy_with_adapt"], m, ymax, f"{m:.2f}"),
                                        (bx, x["energy_vs_same_level"], 100 * x["vs_top2_same_level"], rtop,
                                         f"{100 * x['vs_top2_same_level']:+.0f}%")):
            if ey > top:  # off the chart (static pruning r = 2): named at the top edge
                axis.annotate(f"↑ {label} ({text})", (ex, top), fontsize=6, color=c, ha="right", va="top",
                              xytext=(-4, -9 * above[id(axis)]), textcoords="offset points")
                above[id(axis)] += 1
                continue
            err = [[m - lo], [hi - m]] if (x["n"] > 1 and axis is ax) else None
            axis.errorbar(ex, ey, yerr=err, fmt=marker[(x["family"], x["knob"])], color=c, mfc=c if x["ttt"] else "none", ms=6, capsize=3,
                          label=label if axis is ax else None)
        if x["ttt"]:
            ax.plot([x["energy"], x["energy_with_adapt"]], [m, m], color=c, lw=0.8)
            ax.plot(x["energy"], m, "|", color=c, ms=8)
    lo_y = min(x["bpb"][2] for x in rows) * 0.98
    ax.fill_between([0, 1 - ea.TARGET_CUT], lo_y, b0 * (1 + ea.TARGET_LOSS), color="g", alpha=0.08,
                    label=f"target: ≥ {100 * ea.TARGET_CUT:g}% less energy at < {100 * ea.TARGET_LOSS:g}% loss")
    ax.axhline(b0 * (1 + ea.QUALITY_RULE), color="k", ls="--", lw=0.8, label="static top-2 + 1% bits/byte")
    ax.axhline(b0, color="k", lw=0.5)
    ax.set_ylim(lo_y, ymax)
    ax.set_xlim(0.4, max(x["energy_with_adapt"] for x in rows) * 1.05)
    ax.set_xlabel("expert energy per token vs static top-2 (ANALYTIC; with TTT: + the adaptation's simulated "
                  "share, | = inference only)", fontsize=7)
    ax.set_ylabel("bits/byte on kjv.test.noise10 (CPU; lower is better)", fontsize=8)
    ax.set_title("every baseline without (hollow) and with (filled) the same TTT", fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, ncol=6, loc="lower center", bbox_to_anchor=(0.5, 0.03))
    bx.axhline(100 * ea.QUALITY_RULE, color="k", ls="--", lw=0.8, label="+1% bits/byte")
    bx.axvline(1 - ea.TARGET_CUT, color="g", ls=":", lw=1, label=f"{100 * ea.TARGET_CUT:g}% less energy")
    bx.axhline(0, color="k", lw=0.5)
    bx.set_ylim(top=rtop)
    bx.set_xlabel("energy vs top-2 at the same adaptation (ANALYTIC, adaptation's simulated share included)",
                  fontsize=7)
    bx.set_ylabel("bits/byte vs top-2 at the same adaptation (%)", fontsize=8)
    bx.set_title("at equal adaptation (hollow: vs top-2; filled: vs top-2 + TTT)", fontsize=9)
    bx.legend(fontsize=7, loc="center right")
    for a in (ax, bx):
        a.tick_params(labelsize=7)
    seeds = ", ".join(map(str, meta.get("seeds", ea.SEEDS)))
    fig.suptitle(f"Baselines at equal adaptation: models/kjv-small, {meta.get('test_tokens', '?')} tokens of "
                 f"kjv.test.noise10, knobs fixed on kjv.val.noise10, TTT over LoRA seeds {seeds} (min–max)",
                 fontsize=10)
    footer(fig, meta, records, rel)
    fig.tight_layout(rect=(0, 0.15, 1, 0.95))
    fig_maker.save(fig, "equal_adaptation.png", files(records),
                   "bits/byte against analytic expert energy of every baseline with and without the same TTT",
                   "computed on the CPU; energy analytic")


def ablation_bars(fig_maker, s, records, rel):
    plt, meta = fig_maker.plt, s["meta"]
    rows = [x for x in s["ablations"] if x["group"] != "reference"]
    refs = {x["label"]: x for x in s["ablations"] if x["group"] == "reference"}
    groups = list(dict.fromkeys(x["group"] for x in rows))
    colors = {g: f"C{i}" for i, g in enumerate(groups)}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 0.32 * len(rows) + 1.6), sharey=True,
                                 gridspec_kw={"width_ratios": [3, 1.4]})
    ys = list(range(len(rows)))[::-1]
    for y, x in zip(ys, rows):
        ax.barh(y, x["bpb"], color=colors[x["group"]], height=0.7)
        gap = f", gap closed {100 * x['gap_closed']:.0f}%" if x["gap_closed"] is not None and x["ttt"] else ""
        ax.annotate(f"{x['bpb']:.3f}{gap}", (x["bpb"], y), fontsize=6, va="center", xytext=(2, 0),
                    textcoords="offset points")
        bx.barh(y, 100 * x["time_share"], color=colors[x["group"]], height=0.7)
        bx.annotate(f"{100 * x['time_share']:.0f}% ({x['adapted']}/{x['windows']} adapted)", (100 * x["time_share"], y),
                    fontsize=6, va="center", xytext=(2, 0), textcoords="offset points")
    none = s["base"]["bits_per_byte"]
    ax.axvline(none, color="k", ls="--", lw=0.8, label=f"no TTT {none:.3f}")
    for label, r in refs.items():
        ax.axvline(r["bpb"], color="0.5", ls=":" if r["ttt"] else "-.", lw=0.8, label=f"{label} {r['bpb']:.3f}")
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{x['group']}: {x['label']}" for x in rows], fontsize=7)
    ax.set_xlabel("bits/byte on kjv.test.noise10 (CPU; lower is better)", fontsize=8)
    ax.set_xlim(min(r["bpb"] for r in refs.values()) * 0.9 if refs else 0, none * 1.12)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3)
    bx.set_xlabel("adaptation's share of the run's time (CPU, one stream)", fontsize=8)
    bx.axvline(100 * ea.TARGET_OVERHEAD, color="g", ls=":", lw=1)
    bx.set_xlim(0, 110)
    for a in (ax, bx):
        a.tick_params(labelsize=7)
    fig.suptitle(f"TTT ablations: one change each to the recipe (router, norms, LoRA rank 8; next-token; source guard; "
                 f"every window), top-2, {meta.get('test_tokens', '?')} tokens of kjv.test.noise10, LoRA seed "
                 f"{ea.SEEDS[0]} (computed on the CPU, no energy)", fontsize=9)
    footer(fig, meta, records, rel)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig_maker.save(fig, "ttt_ablations.png", files(records),
                   "bits/byte and adaptation time share of each TTT ablation", "computed on the CPU (no energy)")
