"""serve_billing.png for scripts/experiments/figures.py: what `wattmoe serve` bills against what the board drew, from
bench/serve_bench.py's records in RECORDS/<run>/ (serve_bench.jsonl, summary.json) of the RUNS below, each a session
on an H100 with the medium model (one machine per run):

  left   the requests' billed joules over the NVML counter's joules in the same interval, per concurrency and policy,
         for each run (billing as it was then); the TTT point adds the adaptation's joules (billed to no request)
  right  the latest run's whole-board and above-idle J per completion token from the counter (not from the bills),
         top-2 against skip β 0.5, idle measured in the same run before the budget step's load

Measured energy (NVML counter) throughout; the footer names each run's card and idle power.
"""
import json
import os

RUNS = (("serve-batched", "steps only", "0.6"),
        ("serve-idle-billing-before", "+ windows carried between steps", "C1"),
        ("serve-idle-billing", "+ idle gaps up to 1 s (--bill-idle-s)", "C0"))
STREAMS = (1, 8, 32, 128)  # serve_bench's default concurrencies (the ticks)
POLICIES = (("topk k_max=2", "top-2", "-", "o"), ("skip beta=0.5", "skip β 0.5", "--", "s"))


def files(records):
    return [os.path.join(records, run, name) for run, _, _ in RUNS for name in ("serve_bench.jsonl", "summary.json")]


def points(d):
    with open(os.path.join(d, "serve_bench.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("kind") == "point"]


def card_and_idle(d):
    s = json.load(open(os.path.join(d, "summary.json")))
    card = s["card"].split(":", 1)[-1].split("(UUID")[0].strip()
    return card, (s.get("budget") or {}).get("idle_w")


def draw(fig_maker, records, need, rel):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record. Draws serve_billing.png."""
    for p in files(records):
        need(p)
    plt = fig_maker.plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.6))
    footer = []
    for run, label, color in RUNS:
        d = os.path.join(records, run)
        pts = points(d)
        for policy, name, style, marker in POLICIES:
            mine = sorted((p["concurrency"], p["energy_check"]["billed_over_counter"]) for p in pts
                          if p["policy"] == policy)
            ax.plot([c for c, _ in mine], [r for _, r in mine], style, marker=marker, color=color, ms=4,
                    label=f"{label}, {name}")
        for p in pts:
            if "ttt" in p:
                ax.plot(p["concurrency"], p["energy_check"]["billed_over_counter"], "*", color=color, ms=11,
                        label=f"{label}, top-2 + online TTT (billed + adaptation)")
        card, idle = card_and_idle(d)
        footer.append(f"{run}: {card}, idle {idle:.1f} W")
    ax.axhspan(0.95, 1.05, color="0.9", zorder=0, label="within 5%")
    ax.set_ylim(0.3, 1.08)  # room under the data for the legend
    ax.set_xscale("log", base=2)
    ax.set_xticks(STREAMS, [str(c) for c in STREAMS])
    ax.set_xlabel("concurrent streams", fontsize=8)
    ax.set_ylabel("requests' billed J / NVML counter J", fontsize=8)
    ax.set_title("what serve bills against what the board drew (per point, 8 s)", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    ax.tick_params(labelsize=7)

    run, label, _ = RUNS[-1]
    d = os.path.join(records, run)
    pts = points(d)
    _, idle = card_and_idle(d)
    for policy, name, style, marker in POLICIES:
        mine = sorted((p["concurrency"], p["whole"]) for p in pts if p["policy"] == policy)
        whole = [w["counter_energy_j"] / w["completion_tokens"] for _, w in mine]
        above = [(w["counter_energy_j"] - idle * w["seconds"]) / w["completion_tokens"] for _, w in mine]
        bx.plot([c for c, _ in mine], whole, style, marker=marker, color="C3", ms=4, label=f"{name}, whole board")
        bx.plot([c for c, _ in mine], above, style, marker=marker, color="C2", ms=4, label=f"{name}, above idle")
    bx.set_xscale("log", base=2)
    bx.set_xticks(STREAMS, [str(c) for c in STREAMS])
    bx.set_yscale("log")
    bx.set_xlabel("concurrent streams", fontsize=8)
    bx.set_ylabel("J per completion token (NVML counter)", fontsize=8)
    bx.set_title(f"J/token by concurrency, top-2 vs skip β 0.5 ({rel(d)})", fontsize=9)
    bx.legend(fontsize=7)
    bx.tick_params(labelsize=7)
    fig.suptitle("wattmoe serve on the medium model (bf16, fused kernels, 32-token answers): billing and measured "
                 "energy", fontsize=10)
    fig.text(0.01, 0.005, " · ".join(footer) + f"\n2026-12-06 · measured (NVML energy counter) · records: "
             f"{rel(records)}/{{{','.join(r for r, _, _ in RUNS)}}}", fontsize=6.5, color="0.3")
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig_maker.save(fig, "serve_billing.png", files(records), "serve's billed joules against the NVML counter per "
                   "concurrency for three billing rules, and measured whole-board and above-idle J/token of top-2 and "
                   "skip", "measured")
