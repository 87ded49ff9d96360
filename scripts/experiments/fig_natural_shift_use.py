"""natural_shift_use.png for scripts/experiments/figures.py: expert use per layer on natural domain shifts, from the
records of scripts/experiments/natural_shift_use.py (runs.jsonl, meta.json).

  top     each stream without adaptation: every layer's share of (token, expert) pairs per expert, over the whole run;
          prose (in-domain) first, then the held-out domains, each titled with its distance from prose's use
  bottom  per held-out domain, TTT minus unadapted on the same last windows (the full setting of natural_shift.py),
          titled with bits/byte before and after and the distance from prose's use before and after

Distance: total variation between two layers' expert shares (half the sum of absolute differences, 0..1), averaged
over layers. Labelled "computed on the CPU (no energy)" in the title and the footer.
"""
import os

import natural_shift_use

PANEL_KEYS = ("expert_counts", "expert_counts_last")


def files(records):
    return [os.path.join(records, n) for n in ("runs.jsonl", "meta.json")]


def shares(counts, where, fail):
    """Layer → expert shares of that layer's pairs, layers in order; a missing or empty matrix is an error."""
    if not counts:
        fail(f"{where}: no expert counts")
    rows = []
    for layer in sorted(counts, key=int):
        total = sum(counts[layer])
        rows.append([c / total if total else 0.0 for c in counts[layer]])
    return rows


def distance(a, b):
    """Total variation between the two matrices' rows, averaged over layers."""
    return sum(0.5 * sum(abs(x - y) for x, y in zip(ra, rb)) for ra, rb in zip(a, b)) / len(a)


def load(records, need, fail, read_json, read_jsonl):
    """{(domain, setting): (summary, {key: shares})} for every run, and meta."""
    for p in files(records):
        need(p)
    runs, meta = read_jsonl(files(records)[0]), read_json(files(records)[1])
    out = {}
    for r in runs:
        where = f"{files(records)[0]}: {r.get('domain')} {r.get('setting')}"
        s = r.get("summary") or fail(f"{where}: no summary")
        out[(r["domain"], r["setting"])] = (s, {k: shares(s.get(k), f"{where} {k}", fail) for k in PANEL_KEYS})
    return out, meta


def draw(fig_maker, records, need, rel, fail, read_json, read_jsonl):
    """fig_maker: figures.Figures (plt, save); need(path), read_json, read_jsonl and fail(msg) are figures.py's (a
    missing or unreadable record ends the script naming it). Draws natural_shift_use.png."""
    runs, meta = load(records, need, fail, read_json, read_jsonl)
    streams = [natural_shift_use.PROSE] + list(natural_shift_use.natural_shift.HELD_OUT)
    for d in streams:
        for setting in ("static",) if d == natural_shift_use.PROSE else ("static", "full"):
            if (d, setting) not in runs:
                fail(f"{files(records)[0]}: no {setting} run of {d}")
    prose = runs[(natural_shift_use.PROSE, "static")][1]["expert_counts"]
    plt = fig_maker.plt
    fig = plt.figure(figsize=(17, 6.2))
    gs = fig.add_gridspec(2, len(streams) + 1, width_ratios=[1] * len(streams) + [0.06], hspace=0.75, wspace=0.3)
    top = [runs[(d, "static")][1]["expert_counts"] for d in streams]
    vmax = max(x for m in top for r in m for x in r)
    for j, (d, m) in enumerate(zip(streams, top)):
        ax = fig.add_subplot(gs[0, j])
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        s = runs[(d, "static")][0]
        note = "in-domain" if d == natural_shift_use.PROSE else f"from prose {distance(m, prose):.3f}"
        ax.set_title(f"{d}, unadapted\n{s['bits_per_byte']:.3f} bits/byte · {note}", fontsize=7)
        axes_labels(ax, m)
    fig.colorbar(im, cax=fig.add_subplot(gs[0, -1])).ax.tick_params(labelsize=6)
    diffs = {}
    for d in streams[1:]:
        before = runs[(d, "static")][1]["expert_counts_last"]
        after = runs[(d, "full")][1]["expert_counts_last"]
        diffs[d] = (before, after, [[b - a for a, b in zip(ra, rb)] for ra, rb in zip(before, after)])
    lim = max(abs(x) for _, _, m in diffs.values() for r in m for x in r) or 1
    for j, d in enumerate(streams[1:], start=1):
        before, after, m = diffs[d]
        ax = fig.add_subplot(gs[1, j])
        im2 = ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        b0, b1 = runs[(d, "static")][0]["bits_per_byte"], runs[(d, "full")][0]["bits_per_byte"]
        ax.set_title(f"{d}: TTT − unadapted\n{b0:.3f} → {b1:.3f} bits/byte\nfrom prose "
                     f"{distance(before, prose):.3f} → {distance(after, prose):.3f}", fontsize=7)
        axes_labels(ax, m)
    fig.colorbar(im2, cax=fig.add_subplot(gs[1, -1])).ax.tick_params(labelsize=6)
    text = fig.add_subplot(gs[1, 0])
    text.axis("off")
    text.text(0, 0.5, f"bottom row: the last {meta.get('compare_windows', '?')} windows\nof each stream, TTT "
              f"({meta.get('full_setting', {}).get('name', '?')})\nminus unadapted; shares of each\nlayer's "
              f"(token, expert) pairs.\n\"from prose\": total variation of\nthe shares from prose's, mean over\n"
              f"layers (0 = same use, 1 = disjoint)", fontsize=7, va="center")
    fig.suptitle(f"Expert use per layer of {meta.get('model', '?')} (trained on prose) on natural domain shifts, first "
                 f"{meta.get('test_tokens', '?')} tokens of each test split, top-2 routing, before and after "
                 f"test-time training (computed on the CPU; no energy)", fontsize=10)
    fig.text(0.01, 0.005, f"card: none (CPU run) · {meta.get('date', 'date not recorded')} · idle power: n/a · "
             f"{meta.get('label', 'computed on the CPU')} · records: {rel(records)} (commit {meta.get('commit', '?')})",
             fontsize=7, color="0.3")
    fig.subplots_adjust(left=0.04, right=0.97, bottom=0.09, top=0.86)
    fig_maker.save(fig, "natural_shift_use.png", files(records), "expert use per layer on natural domain shifts, "
                   "before and after TTT", "computed on the CPU (no energy)")


def axes_labels(ax, m):
    ax.set_xticks(range(len(m[0])))
    ax.set_yticks(range(len(m)))
    ax.set_yticklabels([f"L{i}" for i in range(len(m))], fontsize=6)
    ax.set_xlabel("expert", fontsize=6)
    ax.tick_params(labelsize=6)
