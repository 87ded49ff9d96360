"""prefill_seeds.png for scripts/experiments/figures.py: the medium model's prefill (64 × 128 tokens, fused kernels,
bf16) on three seeds, after the prefill kernels, from bench/energy_policies records in RECORDS/:

  left   each policy point's cut of the J/token above idle against top-2 of the same run, against its bits/byte
         change on the held-out split (kjv test; the point is chosen on kjv val), one marker per seed, the goal's
         region (≥ 30% cut within +1% bits/byte) shaded
  right  top-2 and top-1 whole-board J/token per seed, the binary before the prefill kernels (main e605672) beside
         the new one on the same model in the same call, labelled with tokens/s

Records: medium_prefill_seed{S}.jsonl (the new binary) and medium_prefill_main-e605672_seed{S}.jsonl (before).
Aggregation: bench/energy_table.py's summarise (medians over reps). Measured (NVML energy counter) throughout.
"""
import os

SEEDS = ("1234", "2", "3")
POLICIES = ("topk k_max=1", "skip beta=0.6", "skip beta=0.7", "skip beta=0.8")
BEFORE = "main-e605672"


def files(records):
    return [os.path.join(records, f"medium_prefill{tag}_seed{s}.jsonl") for s in SEEDS for tag in ("", f"_{BEFORE}")]


def draw(fig_maker, records, need, rel, summarise, read_jsonl):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record; summarise and read_jsonl are
    bench/energy_table.py's and bench/wattmoe_cli.py's. Draws prefill_seeds.png."""
    for p in files(records):
        need(p)

    def row(s, point, path):
        return fig_maker.energy_row(s, "prefill", point, "fused", path)

    plt = fig_maker.plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    cards, idles = set(), []
    ax.fill_between([-0.5, 1.0], 30, 36, color="0.93", lw=0)  # the goal's region (the axes span 20..36 %)
    ax.axhline(30, color="0.5", ls="--", lw=0.8, label="goal: ≥ 30% within +1% bits/byte")
    ax.axvline(1.0, color="0.5", ls=":", lw=0.8)
    for k, seed in enumerate(SEEDS):
        new_path = os.path.join(records, f"medium_prefill_seed{seed}.jsonl")
        old_path = os.path.join(records, f"medium_prefill_{BEFORE}_seed{seed}.jsonl")
        new, old = summarise(read_jsonl(new_path))["medium"], summarise(read_jsonl(old_path))["medium"]
        cards.update((new["card"], old["card"]))
        idles.append(f"seed {seed} {new['idle_w']:.1f} W")
        base = row(new, "topk", new_path)
        for i, point in enumerate(POLICIES):
            r = row(new, point, new_path)
            x, y = 100 * (r["bpb_report"] / base["bpb_report"] - 1), 100 * (1 - r["above"] / base["above"])
            ax.scatter(x, y, color=f"C{i}", marker="os^"[k], s=30,
                       label=fig_maker.point_label(point) if k == 0 else None)
        # Before the kernels: top-1 on the same model (top-2 and top-1 were all that binary ran).
        ob, o1 = row(old, "topk", old_path), row(old, "topk k_max=1", old_path)
        ax.scatter(100 * (o1["bpb_report"] / ob["bpb_report"] - 1), 100 * (1 - o1["above"] / ob["above"]),
                   facecolors="none", edgecolors="C0", marker="os^"[k], s=30,
                   label=f"top-1 before the kernels ({BEFORE})" if k == 0 else None)
        for j, (point, tag) in enumerate((("topk", "top-2"), ("topk k_max=1", "top-1"))):
            for h, (s, path, when) in enumerate(((old, old_path, "before"), (new, new_path, "new"))):
                r = row(s, point, path)
                xpos = k + (2 * j + h - 1.5) * 0.2
                bx.bar(xpos, 1e3 * r["board"], 0.18, color=f"C{2 * j + h + 4}",
                       label=f"{tag}, {'main e605672' if h == 0 else 'prefill kernels'}" if k == 0 else None)
                bx.text(xpos, 1e3 * r["board"] + 0.003, f"{r['tps'] / 1e6:.2f}M", ha="center", va="bottom",
                        fontsize=5.8, rotation=90)
    ax.set_xlabel("bits/byte on the held-out split (kjv test) vs top-2 (%)", fontsize=8)
    ax.set_ylabel("J/token above idle saved vs top-2 (%)", fontsize=8)
    ax.set_title("medium, prefill 64 × 128: what the policies save\n(markers ○ □ △: seeds 1234, 2, 3)", fontsize=9)
    ax.set_ylim(20, 36)
    ax.legend(fontsize=6, loc="lower right")
    ax.tick_params(labelsize=7)
    bx.set_xticks(range(len(SEEDS)))
    bx.set_xticklabels([f"seed {s}" for s in SEEDS], fontsize=7.5)
    bx.set_ylabel("whole-board mJ/token (labels: tokens/s)", fontsize=8)
    bx.set_title("top-2 and top-1 before and after the prefill kernels\n(same model, same call)", fontsize=9)
    bx.set_ylim(0, 0.26)
    bx.legend(fontsize=6, ncol=2, loc="upper center")
    bx.tick_params(labelsize=7)
    fig_maker.measured_footer(fig, records, cards, idles, "medians of 5 reps (3 before) of ≥ 1 s")
    fig_maker.save(fig, "prefill_seeds.png", files(records), "prefill on three medium seeds: the policies' cuts "
                   "against bits/byte, and top-2 / top-1 before and after the prefill kernels")
