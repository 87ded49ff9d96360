"""sim_edge.png for scripts/experiments/figures.py: the 15 W budget on the simulated edge module, from the records of
scripts/experiments/sim_edge.py (runs.jsonl, windows.jsonl, meta.json; aggregated by sim_edge.summarise, the same
numbers as its table.md) and the profile they name.

  left   power per window under the 15 W budget without and with TTT (every seed), unbudgeted top-2 faint behind
  right  mJ/token against bits/byte of every run; a TTT run's hollow marker is its mJ/token without the adaptation's
         own joules, joined to the filled one (with them)

Labelled simulated in the title and the footer (card: the simulated profile; idle power: the profile's idle_w).
"""
import json, os

import sim_edge


def files(records):
    return [os.path.join(records, n) for n in ("runs.jsonl", "windows.jsonl", "meta.json")]


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record. Draws sim_edge.png."""
    for p in files(records):
        need(p)
    meta, rows = sim_edge.summarise(records)
    profile = os.path.join(sim_edge.SRC, meta["profile"])
    need(profile)
    with open(profile) as f:
        idle = json.load(f).get("idle_w", "?")
    windows = {}
    for w in sim_edge.read_jsonl(os.path.join(records, "windows.jsonl")):
        windows.setdefault(w["run"], []).append(w)
    plt = fig_maker.plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6))

    def trace(name, **kw):
        ws = windows[name]
        t, x = 0.0, []
        for w in ws:
            t += w["sim_step_s"]
            x.append(t)
        ax.plot(x, [w["sim_power_w"] for w in ws], **kw)

    trace("top2", color="0.75", lw=0.8, label="top-2, no budget")
    trace("b15", color="C0", lw=1.2, label="15 W budget")
    ttt = sorted(n for n in rows if n.startswith("b15_ttt_seed"))
    for i, n in enumerate(ttt):
        trace(n, color="C3", lw=0.8, alpha=0.8, label="15 W budget + TTT (each seed)" if i == 0 else None)
    ax.axhline(meta["budget_w"], color="k", ls="--", lw=0.8, label=f"budget {meta['budget_w']:g} W")
    ax.set_xlabel("simulated time (s)", fontsize=8)
    ax.set_ylabel("power per step (W, simulated)", fontsize=8)
    ax.set_title("power under the budget, per step", fontsize=9)
    ax.legend(fontsize=7)

    def point(name, marker, color, label):
        r = rows[name]
        bx.plot(r["bpb"], 1e3 * r["j_tok"], marker, color=color, label=label)
        if r["adapt_share"] > 0:
            bx.plot([r["bpb"], r["bpb"]], [1e3 * r["j_tok_no_adapt"], 1e3 * r["j_tok"]], color=color, lw=0.8)
            bx.plot(r["bpb"], 1e3 * r["j_tok_no_adapt"], marker, color=color, mfc="none")

    point("top2", "s", "0.5", "top-2, no budget")
    for i, n in enumerate(sorted(x for x in rows if x.startswith("top2_ttt_seed"))):
        point(n, "s", "C1", "top-2 + TTT (hollow: without its adaptation's joules)" if i == 0 else None)
    point("b15", "o", "C0", "15 W budget")
    for i, n in enumerate(ttt):
        point(n, "o", "C3", "15 W budget + TTT (hollow: without its adaptation's joules)" if i == 0 else None)
    bx.set_xlabel("bits/byte on kjv.test.noise10 (lower is better)", fontsize=8)
    bx.set_ylabel("mJ/token (simulated)", fontsize=8)
    bx.set_title("energy against quality, every run", fontsize=9)
    bx.legend(fontsize=7)
    for a in (ax, bx):
        a.tick_params(labelsize=7)
    fig.suptitle(f"SIMULATED edge module ({meta['sim_params']}, experts priced {meta['expert_shape']}, "
                 f"{meta['streams']} streams a step): models/kjv-small, a {meta['budget_w']:g} W budget with and "
                 f"without test-time training", fontsize=10)
    fig.text(0.01, 0.005, f"card: simulated ({meta['profile']}; no device) · {meta['date']} · idle {idle} W (the "
             f"profile's) · simulated, not measured · records: {rel(records)} (commit {meta['commit']})",
             fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig_maker.save(fig, "sim_edge.png", files(records) + [profile],
                   "power under a 15 W budget and mJ/token against bits/byte, with and without TTT, simulated edge "
                   "module", "simulated")
