"""decode_graphs.png for scripts/experiments/figures.py: decoding 8 streams as serving does (energy_policies' slots8,
one forward_slots step a token) with the decode steps replayed as CUDA graphs, against the same steps launched kernel
by kernel (kernels "fused-eager", measured in the same run), from bench/energy_policies records in RECORDS/energy/:

  left   whole-board J/token (idle included) of top-2 eager, top-2 with graphs and skip β 0.8 with graphs, relative to
         top-2 eager, for the shipped model (kjv-small), the medium model (seed 1234) and the Mixtral shape (random
         weights, 3 of 8 layers' width: scripts/device/mixtral_random.json; skip β 0.5 there, the point it ran)
  right  the medium model's three seeds (1234, 2, 3): each policy's J/token cut against top-2 with graphs, above idle
         and whole-board, one marker per seed

Aggregation: bench/energy_table.py's summarise (medians over reps). Measured (NVML energy counter) throughout.
"""
import os

MODELS = (("kjv-small", "kjv-small_slots8.jsonl", "skip beta=0.8"),
          ("medium", "medium_s1234_slots8_decode8.jsonl", "skip beta=0.8"),
          ("mixtral", "mixtral_slots8.jsonl", "skip beta=0.5"))
SEEDS = (("1234", "medium_s1234_slots8_decode8.jsonl"), ("2", "medium_s2_slots8.jsonl"),
         ("3", "medium_s3_slots8.jsonl"))
POLICIES = ("topk k_max=1", "skip beta=0.6", "skip beta=0.7", "skip beta=0.8")


def files(records):
    names = sorted({f for _, f, _ in MODELS} | {f for _, f in SEEDS})
    return [os.path.join(records, "energy", f) for f in names]


def draw(fig_maker, records, need, rel, summarise, read_jsonl):
    """fig_maker: figures.Figures (plt, save); need(path) fails on a missing record; summarise and read_jsonl are
    bench/energy_table.py's and bench/wattmoe_cli.py's. Draws decode_graphs.png."""
    for p in files(records):
        need(p)

    def row(s, point, kernels, path):
        return fig_maker.energy_row(s, "slots8", point, kernels, path)

    plt = fig_maker.plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    cards, idles = set(), []
    labels = ("top-2, eager steps", "top-2, CUDA graphs", "policy, CUDA graphs")
    for i, (model, f, policy) in enumerate(MODELS):
        path = os.path.join(records, "energy", f)
        s = summarise(read_jsonl(path))[model]
        cards.add(s["card"])
        idles.append(f"{model} {s['idle_w']:.1f} W")
        eager, graphs, pol = (row(s, "topk", "fused-eager", path), row(s, "topk", "fused", path),
                              row(s, policy, "fused", path))
        for j, r in enumerate((eager, graphs, pol)):
            v = r["board"] / eager["board"]
            ax.bar(i + (j - 1) * 0.27, v, 0.25, color=f"C{j}", label=labels[j] if i == 0 else None)
            ax.text(i + (j - 1) * 0.27, v + 0.01, f"{1e3 * r['board']:.3g}\n{r['tps']:,.0f}/s", ha="center",
                    va="bottom", fontsize=5.8)
    ax.set_xticks(range(len(MODELS)))
    ax.set_xticklabels([f"{m}\n({p.replace('beta=', 'β ')})" for m, _, p in MODELS], fontsize=7.5)
    ax.set_ylim(0, 1.42)
    ax.set_ylabel("whole-board J/token, relative to top-2 eager", fontsize=8)
    ax.set_title("8 streams, serving's batched step: board J/token\n(labels: mJ/token, tokens/s)", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=3)
    ax.tick_params(labelsize=7)
    for k, (seed, f) in enumerate(SEEDS):
        path = os.path.join(records, "energy", f)
        s = summarise(read_jsonl(path))["medium"]
        cards.add(s["card"])
        base = row(s, "topk", "fused", path)
        for i, point in enumerate(POLICIES):
            r = row(s, point, "fused", path)
            bx.scatter(i - 0.12, 100 * (1 - r["above"] / base["above"]), color="C3", marker="os^"[k], s=22,
                       label=f"above idle, seed {seed}" if i == 0 else None)
            bx.scatter(i + 0.12, 100 * (1 - r["board"] / base["board"]), color="C0", marker="os^"[k], s=22,
                       label=f"whole board, seed {seed}" if i == 0 else None)
    bx.axhline(15, color="0.5", ls="--", lw=0.8, label="goal at 8 streams: 15% above idle")
    bx.set_xticks(range(len(POLICIES)))
    bx.set_xticklabels([fig_maker.point_label(p) for p in POLICIES], fontsize=7.5)
    bx.set_ylabel("J/token saved against top-2 (%), both with graphs", fontsize=8)
    bx.set_title("medium, three seeds: what the policies save", fontsize=9)
    bx.set_ylim(0, 35)
    bx.legend(fontsize=6, ncol=2, loc="lower right")
    bx.tick_params(labelsize=7)
    fig_maker.measured_footer(fig, records, cards, idles, "medians of 3–5 reps of ≥ 1 s", "/energy")
    fig_maker.save(fig, "decode_graphs.png", files(records), "decode-step CUDA graphs: board J/token against eager "
                   "steps, and the policies' savings over three medium seeds")
