#!/usr/bin/env python3
"""The evaluation's figures, drawn from committed records (matplotlib; PNGs at 100 DPI).

    python3 scripts/experiments/figures.py --from-records [RECORDS] [--out docs/figures]
    python3 scripts/experiments/figures.py --device cuda          # how to make fresh records on a GPU (prints only)

RECORDS is a folder laid out like results/h100-2026-12-06/ (the default; results/README.md says what each file is):

  energy/{kjv-small,medium,mixtral}.jsonl   bench/energy_policies windows ->  pareto_<model>.png  (J/token above idle
                                            against bits/byte per policy point, one panel per mode; the Mixtral shape
                                            has random weights, so its x axis is experts/token), edp.png (energy-delay
                                            product per policy against top-2, every model and mode)
  budget*/step.jsonl, step.json             `wattmoe run --plant model` under a stepped budget -> power_<folder>.png
                                            (power against target per window, the knob, experts/token, temperature)
  ttt/<model>.summary.json (+ ttt/<model>-run*/<model>.summary.json, repeats) -> ttt.png (bits/byte, whole-board and
                                            above-idle J/token of static top-2, the skip policy and the policy + TTT)
  {ttt-merge,ttt-device-step,ttt-gemm-split}/ttt_time/<model>-{base,new,new2}.{nottt,plain,phases}.json, card.txt
                                            (and results/h100-2026-12-07/ttt-merged/call3-final/ of the source tree)
                                            scripts/device/ttt_time.sh before and after each TTT speed change
                                            -> ttt_time.png (fig_ttt_time.py: ms per window, adaptation by phase,
                                            one row a change)
  serve-batched/, serve-idle-billing-before/, serve-idle-billing/: serve_bench.jsonl, summary.json
                                            bench/serve_bench.py under three billing rules -> serve_billing.png
                                            (fig_serve.py: billed over counter joules per concurrency, and the
                                            latest run's whole-board and above-idle J/token, top-2 and skip)

TTT_SEEDS (--ttt-seeds-records, default results/h200-2026-12-06/ttt-seeds/: NAME-seedN.summary.json of
scripts/device/ttt_energy.sh --lora-seed N) -> ttt_seeds.png: the same bars over the LoRA seeds (median, min-max).

TTT_USE (--ttt-use-records, default results/cpu-kjv-small-ttt-use/: static.json, ttt.json, meta.json of
scripts/experiments/ttt_expert_use.py) -> ttt_expert_use.png: expert use per layer on a shifted stream without
adaptation and in the first and last windows of the TTT run (CPU, no energy: labelled so).

SIM_EDGE (--sim-edge-records, default results/sim-edge/: runs.jsonl, windows.jsonl, meta.json of
scripts/experiments/sim_edge.py) -> sim_edge.png (fig_sim_edge.py): power under a 15 W budget with and without TTT and
mJ/token against bits/byte on the simulated edge module (CPU runs, energy SIMULATED: labelled so).

EQUAL_ADAPTATION (--equal-adaptation-records, default results/cpu-kjv-small-ablations/: records.jsonl, meta.json of
scripts/experiments/equal_adaptation.py) -> equal_adaptation.png (bits/byte against ANALYTIC expert energy of every
baseline with and without the same TTT, seed spreads, the targets marked) and ttt_ablations.png (the TTT ablations'
bits/byte and time share), fig_equal_adaptation.py (CPU runs: labelled computed on the CPU, energy analytic).
NATURAL_SHIFT (--natural-shift-records, default results/cpu-mix-small-shift/: tuning.jsonl, runs.jsonl, windows.jsonl,
meta.json of scripts/experiments/natural_shift.py) -> natural_shift.png (fig_natural_shift.py): bits/byte per held-out
domain before and after TTT, and gain against adaptation overhead (CPU, no energy: labelled so).
SERVE_TIER (--serve-tier-records, default results/h100-2026-12-07/device-quant/: card.txt and serve-fp8-0.4/,
serve-fp8-0.7/, serve-bf16-0.7/ with serve_bench.jsonl and the bench's log) -> serve_tier.png (fig_serve_tier.py):
serve's power per window under stepped budgets with and without the fp8 tier level (measured, NVML counter).
DECODE_GRAPHS (--decode-graphs-records, default results/h100-2026-12-07/decode-graphs/: energy/*.jsonl of
bench/energy_policies --modes slots8 --eager-baseline) -> decode_graphs.png (fig_decode_graphs.py): whole-board J/token
of decode steps replayed as CUDA graphs against eager ones, and the policies' savings over three medium seeds.
NATURAL_SHIFT_USE (--natural-shift-use-records, default results/cpu-mix-small-shift-use/: runs.jsonl, meta.json of
scripts/experiments/natural_shift_use.py) -> natural_shift_use.png (fig_natural_shift_use.py): expert use per layer on
prose and on each held-out domain without adaptation, and what TTT changed on each (CPU, no energy: labelled so).
PREFILL_SEEDS (--prefill-seeds-records, default results/h100-2026-12-08/g3-prefill/:
medium_prefill[_main-e605672]_seed*.jsonl of bench/energy_policies --modes prefill) -> prefill_seeds.png
(fig_prefill_seeds.py): the policies' prefill cuts against held-out bits/byte on three medium seeds, and top-2 /
top-1 before and after the prefill kernels.

Each figure's footer states the card, the records' date (the folder's YYYY-MM-DD), the idle power and "measured",
all read from the records; where a point was measured more than once the bar or marker shows the spread (min-max)
around the median. Aggregation of the energy windows is bench/energy_table.py's (`summarise`), not a second copy.
OUT/figures.json lists every PNG with the records it was drawn from, the command and the source commit.
A missing or unreadable record is an error (exit 2) naming the file; nothing is drawn from a partial set.
"""
import argparse, json, math, os, re, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "bench"))
import wattmoe_cli  # noqa: E402  (read_jsonl)
import energy_table  # noqa: E402  (the one aggregation of bench/energy_policies records)
import fig_sim_edge  # noqa: E402  (sim_edge.png)
import fig_equal_adaptation  # noqa: E402  (equal_adaptation.png, ttt_ablations.png)
import fig_natural_shift  # noqa: E402  (natural_shift.png)
import fig_natural_shift_use  # noqa: E402  (natural_shift_use.png)
import fig_ttt_time  # noqa: E402  (ttt_time.png)
import fig_serve  # noqa: E402  (serve_billing.png)
import fig_serve_tier  # noqa: E402  (serve_tier.png)
import fig_decode_graphs  # noqa: E402  (decode_graphs.png)
import fig_prefill_seeds  # noqa: E402  (prefill_seeds.png)

DEFAULT_RECORDS = os.path.join("results", "h100-2026-12-06")
# The other records folders, one line each: (Figures attribute, flag, default, what it holds). The flags, the folder
# checks, figures.json's command and records, and the commit's dirty check are all made from this list.
RECORD_SETS = (
    ("ttt_use", "--ttt-use-records", os.path.join("results", "cpu-kjv-small-ttt-use"),
     "the CPU records of scripts/experiments/ttt_expert_use.py"),
    ("ttt_seeds", "--ttt-seeds-records", os.path.join("results", "h200-2026-12-06", "ttt-seeds"),
     "ttt_energy.sh summaries over LoRA seeds"),
    ("sim_edge", "--sim-edge-records", os.path.join("results", "sim-edge"),
     "the CPU records of scripts/experiments/sim_edge.py"),
    ("equal_adaptation", "--equal-adaptation-records", os.path.join("results", "cpu-kjv-small-ablations"),
     "the CPU records of scripts/experiments/equal_adaptation.py"),
    ("shift", "--natural-shift-records", os.path.join("results", "cpu-mix-small-shift"),
     "the CPU records of scripts/experiments/natural_shift.py"),
    ("shift_use", "--natural-shift-use-records", os.path.join("results", "cpu-mix-small-shift-use"),
     "the CPU records of scripts/experiments/natural_shift_use.py"),
    ("serve_tier", "--serve-tier-records", os.path.join("results", "h100-2026-12-07", "device-quant"),
     "bench/serve_bench.py records of serve's fp8 tier level"),
    ("decode_graphs", "--decode-graphs-records", os.path.join("results", "h100-2026-12-07", "decode-graphs"),
     "energy_policies records of decode-step CUDA graphs"),
    ("prefill_seeds", "--prefill-seeds-records", os.path.join("results", "h100-2026-12-08", "g3-prefill"),
     "energy_policies prefill records of three medium seeds"),
)
ENERGY_MODELS = ("kjv-small", "medium", "mixtral")
TTT_MODELS = ("kjv-small", "medium")
DPI = 100

# The seed's targets, drawn on the Pareto fronts: >= 20% less energy at < 5% quality loss; G3's 1% bits/byte line.
TARGET_ENERGY_CUT, TARGET_QUALITY_LOSS, G3_QUALITY = 0.20, 0.05, 0.01

DEVICE_PLAN = """Fresh records need a GPU (scripts/device/, run there from binaries built here; nothing here runs one):
  1. scripts/device/pack_session.sh                      pack the CPU machine's CUDA build for the device
  2. on the device, into one records folder R (the layout of results/h100-2026-12-06/):
     TRAIN_S=235 scripts/device/session.sh train          the medium model (R/medium/)
     ENERGY_MODELS=kjv-small,medium,mixtral scripts/device/session.sh energy
                                                          scripts/device/energy_policies.sh -> R/energy/<model>.jsonl
     scripts/device/session.sh budget                     scripts/device/control_real.sh --plant model -> R/budget-medium/
     BUDGET_SPAN=routing scripts/device/session.sh budget -> R/budget-medium-routing/
     scripts/device/session.sh ttt                        scripts/device/ttt_energy.sh -> R/ttt/<model>.*.json
     (each phase packs its logs and records into $OUT/session.tgz; unpack them into R)
  3. here: python3 scripts/experiments/figures.py --from-records R --out docs/figures
"""


def fail(msg):
    print(f"figures.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def need(path):
    if not os.path.isfile(path):
        fail(f"missing record {path}")
    return path


def read_json(path):
    try:
        with open(need(path)) as f:
            return json.load(f)
    except ValueError as e:
        fail(f"{path}: not JSON ({e})")


def read_jsonl(path):
    out = wattmoe_cli.read_jsonl(need(path), "figures.py")
    if not out:
        fail(f"{path}: no records")
    return out


def records_date(records):
    m = re.search(r"(\d{4}-\d{2}-\d{2})", os.path.basename(os.path.normpath(records)))
    return m.group(1) if m else "date not recorded"


def card_name(s):
    """'nvml:0 (NVIDIA H100 80GB HBM3)' or 'NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)' -> 'NVIDIA H100 80GB HBM3'."""
    s = s or "card not recorded"
    m = re.match(r"nvml:\d+ \((.*)\)$", s)
    return m.group(1) if m else re.sub(r" \(sm_.*\)$", "", s)


def footer(fig, card, date, idle, records, extra="measured (NVML energy counter)"):
    fig.text(0.01, 0.005, f"{card_name(card)} · {date} · idle {idle} · {extra} · records: {records}",
             fontsize=7, color="0.3", ha="left", va="bottom")


def spread(values):
    """(median, median - min, max - median) of the finite values, or None."""
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    if not v:
        return None
    m = statistics.median(v)
    return m, m - min(v), max(v) - m


def short(row):
    """A policy point's short label: 'skip beta=0.5' -> 'skip β0.5', 'topk k_max=1' -> 'top-1'."""
    p = row["point"]
    if row["baseline"]:
        return "top-2"
    return (p.replace("topk k_max=1", "top-1").replace("beta=", "β").replace("lambda=", "λ").replace("top_p p=", "top-p ")
            .replace(" reuse=", " reuse ").replace("mask r=", "mask r"))


def edp(window):
    """Energy-delay product per token of one window: whole-board J/token × s/token."""
    return window["j_per_token"] / window["tokens_per_s"]


def pareto(points):
    """Indices of the points no other point beats on both x and y (lower is better for both)."""
    keep = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def repo_path(p):
    """An argument path: as given if it exists from here (or is absolute), else relative to the repository root."""
    return os.path.abspath(p if os.path.isabs(p) or os.path.exists(p) else os.path.join(SRC, p))


def rel(p):
    return os.path.relpath(p, SRC) if p.startswith(SRC) else p


class Figures:
    def __init__(self, records, out, plt, dirs):
        """dirs: RECORD_SETS' folders by attribute (self.ttt_use, self.shift, ...)."""
        self.records, self.out, self.plt = records, out, plt
        for name, _, _, _ in RECORD_SETS:
            setattr(self, name, dirs[name])
        self.rel = rel(records)
        self.date = records_date(records)
        self.made = []

    def path(self, *parts):
        return os.path.join(self.records, *parts)

    def save(self, fig, name, sources, what, label="measured"):
        fig.savefig(os.path.join(self.out, name), dpi=DPI, metadata={"Software": None})
        self.plt.close(fig)
        self.made.append({"png": name, "what": what, "label": label, "sources": [rel(s) for s in sources]})

    @staticmethod
    def energy_row(summary, mode, point, kernels, path):
        """A point's row in an energy_table.summarise model summary; a missing one is an error naming the record."""
        r = summary["rows"].get((mode, point, kernels))
        if r is None:
            fail(f"{path} has no {mode} window of '{point}' on {kernels}")
        return r

    @staticmethod
    def point_label(point):
        """'topk k_max=1' -> 'top-1', 'skip beta=0.8' -> 'skip β 0.8' (the tick labels of the energy figures)."""
        return point.replace("topk k_max=1", "top-1").replace("beta=", "β ")

    def measured_footer(self, fig, records, cards, idles, reps, shown=""):
        """The footer of the figures drawn from bench/energy_policies records (decode_graphs, prefill_seeds): the
        cards, the date in the records' path, each run's idle power, how the windows were aggregated (`reps`) and
        where the records are (`shown` appended to their folder); then the layout that leaves room for it."""
        date = re.search(r"\d{4}-\d{2}-\d{2}", os.path.abspath(records))
        card = ", ".join(sorted(c for c in cards if c))
        fig.text(0.01, 0.005, f"{card} · {date.group(0) if date else 'date unknown'} · idle: {', '.join(idles)} · "
                 f"measured (NVML energy counter), {reps}\nrecords: {rel(records)}{shown}", fontsize=6.5, color="0.3")
        fig.tight_layout(rect=(0, 0.05, 1, 1))

    def budget_folders(self):
        return sorted(d for d in os.listdir(self.records) if d.startswith("budget") and os.path.isdir(self.path(d)))

    def check(self):
        """Every record a figure needs, before anything is drawn."""
        for model in ENERGY_MODELS:
            need(self.path("energy", f"{model}.jsonl"))
        folders = self.budget_folders()
        if not folders:
            fail(f"missing record {self.path('budget*', 'step.jsonl')}")
        for d in folders:
            need(self.path(d, "step.jsonl"))
            need(self.path(d, "step.json"))
        for model in TTT_MODELS:
            need(self.path("ttt", f"{model}.summary.json"))
        for name in ("static.json", "ttt.json", "meta.json"):
            need(os.path.join(self.ttt_use, name))
        if not self.seed_summaries():
            fail(f"missing record {os.path.join(self.ttt_seeds, '*-seed*.summary.json')}")
        for p in (fig_sim_edge.files(self.sim_edge) + fig_equal_adaptation.files(self.equal_adaptation) +
                  fig_natural_shift.files(self.shift) + fig_natural_shift_use.files(self.shift_use) +
                  fig_ttt_time.files(self.records) +
                  fig_serve.files(self.records) + fig_serve_tier.files(self.serve_tier) +
                  fig_decode_graphs.files(self.decode_graphs) + fig_prefill_seeds.files(self.prefill_seeds)):
            need(p)

    def seed_summaries(self):
        return sorted(os.path.join(self.ttt_seeds, n) for n in os.listdir(self.ttt_seeds)
                      if re.fullmatch(r".+-seed\d+\.summary\.json", n))

    # (a) and (b): bench/energy_policies records.
    def energy(self):
        summaries = {}
        for model in ENERGY_MODELS:
            p = self.path("energy", f"{model}.jsonl")
            s = energy_table.summarise(read_jsonl(p)).get(model)
            if not s:
                fail(f"{p}: no window records of model {model}")
            summaries[model] = (s, p)
            self.pareto_figure(model, s, p)
        self.edp_figure(summaries)

    def pareto_figure(self, model, s, source):
        rows = [r for r in s["rows"].values() if r["above"] is not None]
        modes = list(dict.fromkeys(r["mode"] for r in rows))
        random_weights = model == "mixtral"  # a Mixtral-shaped layer stack with random weights: bits/byte meaningless
        fig, axes = self.plt.subplots(1, len(modes), figsize=(4.6 * len(modes), 4.2), squeeze=False)
        for ax, mode in zip(axes[0], modes):
            base = energy_table.baseline(s["rows"], mode, "fused")
            if base is None:
                fail(f"{source}: no fused top-2 baseline in mode {mode}")
            pts, placed = [], []
            for r in sorted((r for r in rows if r["mode"] == mode), key=lambda r: ((r["ept"] if random_weights else r["bpb"]) or 0, r["above"])):
                x = r["ept"] if random_weights else r["bpb"]
                sp = spread([(w["joules"] - s["idle_w"] * w["seconds"]) / w["tokens"] for w in r["reps"]
                             if w.get("tokens")])
                if x is None or sp is None:
                    continue
                y, lo, hi = (v * 1e3 for v in sp)
                fused = r["kernels"] == "fused"
                style = dict(marker="*" if r["baseline"] else "o", ms=11 if r["baseline"] else 6,
                             color=("C3" if r["baseline"] else "C0") if fused else "0.6", ls="none", capsize=3)
                ax.errorbar([x], [y], yerr=[[lo], [hi]], **style)
                placed.append((x, y, short(r) + ("" if fused else " (host)")))
                if fused:
                    pts.append((x, y))
            for i, (x, y, text) in enumerate(placed):  # alternate sides so that neighbours' labels do not overlap
                ax.annotate(text, (x, y), fontsize=6.5, xytext=(5, 4 if i % 2 == 0 else -9),
                            textcoords="offset points")
            front = pareto(pts)
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "C0-", lw=1, alpha=0.6,
                    label="Pareto front (fused)")
            bx = base["ept"] if random_weights else base["bpb"]
            by = base["above"] * 1e3
            ax.margins(x=0.15, y=0.12)
            x0, x1 = ax.get_xlim()
            y0, _ = ax.get_ylim()
            y0 = min(y0, by * (1 - TARGET_ENERGY_CUT) * 0.95)
            ax.axhline(by * (1 - TARGET_ENERGY_CUT), color="C1", ls=":", lw=1, label="−20% J/token above idle")
            if not random_weights:
                g3, q5 = bx * (1 + G3_QUALITY), bx * (1 + TARGET_QUALITY_LOSS)
                x1 = max(x1, g3 * 1.002)
                ax.axvline(g3, color="C2", ls="--", lw=1, label="G3: +1% bits/byte")
                ax.fill_between([x0, min(x1, q5)], y0, by * (1 - TARGET_ENERGY_CUT), color="C1", alpha=0.12,
                                label=f"target: ≥20% less at <5% loss (+5% = {q5:.3f}"
                                      f"{'' if q5 <= x1 else ', off the frame'})")
            ax.set_xlim(x0, x1)
            ax.set_ylim(bottom=y0)
            ax.set_title(f"{model}, {mode}", fontsize=10)
            ax.set_xlabel("experts/token (random weights: bits/byte meaningless)" if random_weights else
                          "bits/byte (kjv val, quality pass)", fontsize=8)
            ax.set_ylabel("mJ/token above idle (median; bars: min–max over reps)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="best", framealpha=0.7)
        fig.suptitle(f"Energy–quality per routing policy: {model} (★ = top-2 on the fused kernels)", fontsize=11)
        footer(fig, s["card"], self.date, f"{s['idle_w']:.1f} W", self.rel)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        self.save(fig, f"pareto_{model}.png", [source],
                  f"J/token above idle against bits/byte per policy point, {model}")

    def edp_figure(self, summaries):
        groups = []  # (label, [(point, rel median, lo, hi)])
        cards, idles = set(), []
        for model, (s, _) in summaries.items():
            cards.add(card_name(s["card"]))
            idles.append(s["idle_w"])
            for mode in dict.fromkeys(r["mode"] for r in s["rows"].values()):
                base = energy_table.baseline(s["rows"], mode, "fused")
                # Reps are interleaved (every point once per rep), so each rep is compared with top-2's same rep:
                # the drift between reps (kjv-small decode: 10.6k vs 7.4k tokens/s) cancels out.
                bedp = {w.get("rep"): edp(w) for w in base["reps"]}
                bmed = statistics.median(bedp.values())
                bars = []
                for r in s["rows"].values():
                    if r["mode"] != mode or r["kernels"] != "fused" or r["baseline"]:
                        continue
                    sp = spread([edp(w) / bedp.get(w.get("rep"), bmed) - 1 for w in r["reps"]
                                 if w.get("tokens_per_s")])
                    if sp:
                        bars.append((short(r), *sp))
                groups.append((f"{model}\n{mode}", bars))
        points = list(dict.fromkeys(p for _, bars in groups for p, *_ in bars))
        fig, ax = self.plt.subplots(figsize=(11, 4.4))
        width = 0.8 / max(1, len(points))
        for i, p in enumerate(points):
            xs, ys, err = [], [], [[], []]
            for g, (_, bars) in enumerate(groups):
                for q, m, lo, hi in bars:
                    if q == p:
                        xs.append(g + (i - (len(points) - 1) / 2) * width)
                        ys.append(100 * m)
                        err[0].append(100 * lo)
                        err[1].append(100 * hi)
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=p, color=f"C{i % 10}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g for g, _ in groups], fontsize=7)
        ax.set_ylabel("energy-delay product vs top-2 (%)\nwhole-board J/token × s/token, median over reps", fontsize=8)
        ax.legend(fontsize=7, ncol=4)
        ax.set_title("Energy-delay product per routing policy against top-2 of the same rep (fused kernels; bars: min–max over reps)", fontsize=10)
        idle = ", ".join(f"{m} {s['idle_w']:.1f} W" for m, (s, _) in summaries.items())
        footer(fig, " / ".join(sorted(cards)), self.date, idle, self.rel)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        self.save(fig, "edp.png", [p for _, p in summaries.values()],
                  "energy-delay product per policy against top-2, every model and mode")

    # (c): the budgeted runs.
    def budgets(self):
        for d in self.budget_folders():
            self.power_figure(d)

    def power_figure(self, folder):
        src, summ = self.path(folder, "step.jsonl"), self.path(folder, "step.json")
        ws, s = read_jsonl(src), read_json(summ)
        meas = s.get("measured") or {}
        if "idle_w" not in meas:
            fail(f"{summ}: no measured idle power (measured.idle_w)")
        x = [w["window"] for w in ws]
        fig, (a1, a2, a3) = self.plt.subplots(3, 1, figsize=(8, 7), sharex=True,
                                              gridspec_kw={"height_ratios": [3, 2, 1.4]})
        a1.plot(x, [w["measured_power_w"] for w in ws], "C0.-", label="measured power (NVML counter, per window)")
        a1.step(x, [w["control"]["target"] for w in ws], "C3-", where="mid", label="target")
        a1.set_ylabel("W", fontsize=8)
        a1.legend(fontsize=7)
        a2.plot(x, [w["control"]["u"] for w in ws], "C1.-", label="controller effort u")
        a2.plot(x, [w["control"]["knobs"]["beta"] for w in ws], "C4.-", label="knob: skip β")
        a2.set_ylabel("u, β", fontsize=8)
        a2b = a2.twinx()
        a2b.plot(x, [w["experts_per_token"] for w in ws], "C2.-", label="experts/token")
        a2b.set_ylabel("experts/token", fontsize=8)
        rung = [i for i, w in enumerate(ws) if w["control"].get("rung", 0) and
                (i == 0 or w["control"]["rung"] != ws[i - 1]["control"].get("rung", 0))]
        for i in rung:
            a2.axvline(x[i], color="k", ls=":", lw=1)
            a2.annotate(f"ladder rung {ws[i]['control']['rung']} ({ws[i]['control']['policy']})", (x[i], 0.5),
                        fontsize=7, rotation=90, va="center")
        h1, l1 = a2.get_legend_handles_labels()
        h2, l2 = a2b.get_legend_handles_labels()
        a2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
        a3.plot(x, [w["measured"]["gpu_temp_c"] for w in ws], "C5.-", label="GPU temperature at window end")
        a3.plot(x, [w["measured_max_temp_c"] for w in ws], "C5:", label="max in window")
        a3.set_ylabel("°C", fontsize=8)
        a3.set_xlabel("window (1 s each)", fontsize=8)
        a3.legend(fontsize=7)
        for a in (a1, a2, a2b, a3):
            a.tick_params(labelsize=7)
        model = os.path.basename(str(s.get("model", "?")))
        a1.set_title(f"Power budget held by routing: {folder} (model {model}, {int(meas.get('streams', 0))} streams "
                     f"a {meas.get('step_period_s', '?')} s step)", fontsize=10)
        footer(fig, meas.get("gpu"), self.date, f"{meas['idle_w']:.1f} W", self.rel,
               str(meas.get("label", "measured (NVML)")))
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        self.save(fig, f"power_{folder}.png", [src, summ],
                  f"power against target per window with the knob and temperature, {folder}")

    # (d): energy-aware test-time training.
    def ttt(self):
        per_model, sources = {}, []
        for model in TTT_MODELS:
            paths = [self.path("ttt", f"{model}.summary.json")]
            need(paths[0])
            tdir = self.path("ttt")
            paths += sorted(os.path.join(tdir, d, f"{model}.summary.json") for d in os.listdir(tdir)
                            if d.startswith(f"{model}-run") and os.path.isfile(os.path.join(tdir, d, f"{model}.summary.json")))
            per_model[model] = [read_json(p) for p in paths]
            sources += paths
        self.ttt_figure(per_model, sources, "ttt.png", self.date, self.rel,
                        "bits/byte and J/token of static top-2, the policy and the policy + TTT")

    def ttt_seeds_figure(self):
        paths = self.seed_summaries()
        sums = [read_json(p) for p in paths]
        models = sorted({re.sub(r"-seed\d+$", "", su["model"]) for su in sums})
        seeds = [re.search(r"seed(\d+)$", su["model"]).group(1) for su in sums]
        per_model = {f"{', '.join(models)}, LoRA seeds {', '.join(seeds)}": sums}
        parent = os.path.dirname(os.path.normpath(self.ttt_seeds))
        self.ttt_figure(per_model, paths, "ttt_seeds.png", records_date(parent), rel(self.ttt_seeds),
                        "the TTT bars over LoRA seeds (one run each: static, policy, policy + TTT)")

    def ttt_figure(self, per_model, sources, png, date, records, what):
        """Bars of static top-2, the policy and the policy + TTT per model: bits/byte, board and above-idle J/token."""
        runs = ("static", "policy", "ttt")
        metrics = (("bits_per_byte", "bits/byte", 1), ("j_per_token", "board mJ/token", 1e3),
                   ("j_per_token_above_idle", "mJ/token above idle", 1e3))
        fig, axes = self.plt.subplots(len(per_model), 3, figsize=(11, 3.3 * len(per_model)), squeeze=False)
        cards, idles = set(), []
        for row, (model, sums) in enumerate(per_model.items()):
            for su in sums:
                cards.add(card_name(su.get("card")))
                idles += [su["runs"][r]["idle_w"] for r in runs]
            beta = sums[0].get("beta")
            labels = ["static top-2", f"skip β {beta}", f"skip β {beta}\n+ TTT"]
            for col, (key, name, scale) in enumerate(metrics):
                ax = axes[row][col]
                for i, r in enumerate(runs):
                    m, lo, hi = spread([su["runs"][r][key] * scale for su in sums])
                    ax.bar(i, m, 0.6, yerr=[[lo], [hi]] if len(sums) > 1 else None, capsize=3,
                           color=("0.6", "C0", "C2")[i])
                    if len(sums) > 1:
                        ax.plot([i] * len(sums), [su["runs"][r][key] * scale for su in sums], "k.", ms=3)
                    ax.annotate(f"{m:.4g}", (i, m), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                                textcoords="offset points")
                ax.set_xticks(range(3))
                ax.set_xticklabels(labels, fontsize=7)
                ax.set_title(f"{model}: {name}", fontsize=9)
                ax.tick_params(labelsize=7)
            shares = [su["adaptation_energy_share"] for su in sums]
            adapt = [su["runs"]["ttt"]["adapt_seconds"] for su in sums]
            axes[row][1].set_xlabel(f"{model}: adaptation's share of the joules (ttt vs policy run): " +
                                    ", ".join(f"{100 * x:+.1f}%" for x in shares) + "; adaptation time: " +
                                    ", ".join(f"{x:.2f} s" for x in adapt) + f"; {len(sums)} run(s)" +
                                    (" (dots: each run; bars: median, min–max)" if len(sums) > 1 else ""),
                                    fontsize=7)
            for ax in axes[row]:
                ax.set_ylim(top=ax.get_ylim()[1] * 1.08)
        fig.suptitle("Energy-aware test-time training on kjv.test.noise10 (the model on the GPU, --plant model)",
                     fontsize=11)
        footer(fig, " / ".join(sorted(cards)), date, f"{min(idles):.1f}–{max(idles):.1f} W (per run)", records)
        fig.tight_layout(rect=(0, 0.03, 1, 0.96))
        self.save(fig, png, sources, what)


    # (e): expert use before and after TTT on a shifted stream (CPU records).
    def ttt_expert_use(self):
        paths = [os.path.join(self.ttt_use, n) for n in ("static.json", "ttt.json", "meta.json")]
        static, ttt, meta = (read_json(p) for p in paths)
        panels = [(f"without TTT, last {meta.get('compare_windows', '?')} windows", static["expert_counts_last"], static),
                  (f"TTT, first {meta.get('compare_windows', '?')} windows", ttt["expert_counts_first"], ttt),
                  (f"TTT, last {meta.get('compare_windows', '?')} windows", ttt["expert_counts_last"], ttt)]
        layers = sorted(static["expert_counts"], key=int)

        def shares(counts):
            rows = []
            for l in layers:
                c = counts.get(l)
                if c is None:
                    fail(f"{self.ttt_use}: no expert counts of layer {l}")
                total = sum(c) or 1
                rows.append([x / total for x in c])
            return rows

        mats = [shares(c) for _, c, _ in panels]
        diff = [[b - a for a, b in zip(ra, rb)] for ra, rb in zip(mats[0], mats[2])]
        fig = self.plt.figure(figsize=(15, 3.8))
        gs = fig.add_gridspec(1, 6, width_ratios=[1, 1, 1, 0.06, 1, 0.06], wspace=0.45)
        axes = [fig.add_subplot(gs[0, i]) for i in (0, 1, 2, 4)]
        vmax = max(max(r) for m in mats for r in m)
        for ax, (title, _, run), m in zip(axes, panels, mats):
            im = ax.imshow(m, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
            ax.set_title(f"{title}\nbits/byte of the run {run['bits_per_byte']:.3f}", fontsize=8)
        fig.colorbar(im, cax=fig.add_subplot(gs[0, 3]))
        lim = max(abs(x) for r in diff for x in r) or 1
        im2 = axes[3].imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
        axes[3].set_title("TTT − without TTT, the same last windows", fontsize=8)
        fig.colorbar(im2, cax=fig.add_subplot(gs[0, 5]))
        for ax in axes:
            ax.set_xticks(range(len(mats[0][0])))
            ax.set_yticks(range(len(layers)))
            ax.set_yticklabels([f"layer {l}" for l in layers], fontsize=7)
            ax.set_xlabel("expert", fontsize=7)
            ax.tick_params(labelsize=7)
        data = os.path.basename(str(static.get("data", "?")))
        fig.suptitle(f"Expert use per layer (share of each layer's (token, expert) pairs) on {data} "
                     f"({static.get('tokens', '?')} tokens), top-2 routing, before and after test-time training "
                     f"({ttt.get('ttt', {}).get('groups', '?')})", fontsize=10)
        fig.text(0.01, 0.01, f"card: none (CPU run, {meta.get('device', 'cpu')}) · {meta.get('date', 'date not recorded')} · "
                 f"idle power: n/a · {meta.get('label', 'computed on the CPU')} · records: {rel(self.ttt_use)} "
                 f"(commit {meta.get('commit', '?')})", fontsize=7, color="0.3")
        fig.subplots_adjust(left=0.05, right=0.96, bottom=0.2, top=0.78)
        self.save(fig, "ttt_expert_use.png", paths, "expert use per layer before and after TTT on a shifted stream",
                  "computed on the CPU (no energy)")


def git_commit(*records):
    """The source commit; '+uncommitted' when a script of this folder, the aggregation or the records differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", SRC, *args], capture_output=True, text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        # This folder's scripts (the figures and the experiments whose helpers they import), the aggregation, and
        # the records.
        dirty = git("status", "--porcelain", "--", HERE, os.path.join(SRC, "bench", "energy_table.py"), *records)
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from-records", nargs="?", const=DEFAULT_RECORDS, metavar="RECORDS",
                    help=f"draw from this records folder (default {DEFAULT_RECORDS})")
    for name, flag, default, what in RECORD_SETS:
        ap.add_argument(flag, dest=name, default=default, metavar="DIR", help=f"{what} (default {default})")
    ap.add_argument("--device", choices=["cuda"], help="print how the device scripts regenerate the records")
    ap.add_argument("--out", default=os.path.join("docs", "figures"), help="folder for the PNGs (default docs/figures)")
    a = ap.parse_args()
    if a.device:
        sys.stdout.write(DEVICE_PLAN)
        if not a.from_records:
            return
    if not a.from_records:
        ap.error("give --from-records [RECORDS] (or --device cuda for how to make fresh records)")
    records = repo_path(a.from_records)
    dirs = {name: repo_path(getattr(a, name)) for name, _, _, _ in RECORD_SETS}
    for d, given in [(records, a.from_records)] + [(dirs[n], getattr(a, n)) for n, _, _, _ in RECORD_SETS]:
        if not os.path.isdir(d):
            fail(f"records folder {given} does not exist")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is missing: install python3-matplotlib (scripts/install_deps.sh)")
    os.makedirs(a.out, exist_ok=True)
    f = Figures(records, a.out, plt, dirs)
    f.check()
    f.energy()
    f.budgets()
    f.ttt()
    f.ttt_seeds_figure()
    f.ttt_expert_use()
    fig_sim_edge.draw(f, dirs["sim_edge"], need, rel)
    fig_equal_adaptation.draw(f, dirs["equal_adaptation"], need, rel)
    fig_natural_shift.draw(f, dirs["shift"], need, rel)
    fig_natural_shift_use.draw(f, dirs["shift_use"], need, rel, fail, read_json, read_jsonl)
    fig_ttt_time.draw(f, records, need, rel)
    fig_serve.draw(f, records, need, rel)
    fig_serve_tier.draw(f, dirs["serve_tier"], need, rel)
    fig_decode_graphs.draw(f, dirs["decode_graphs"], need, rel, energy_table.summarise, read_jsonl)
    fig_prefill_seeds.draw(f, dirs["prefill_seeds"], need, rel, energy_table.summarise, read_jsonl)
    flags = " ".join(f"{flag} {rel(dirs[n])}" for n, flag, _, _ in RECORD_SETS)
    meta = {"command": f"python3 scripts/experiments/figures.py --from-records {f.rel} {flags} --out {a.out}",
            "commit": git_commit(records, *dirs.values()),
            "records": [f.rel] + [rel(dirs[n]) for n, _, _, _ in RECORD_SETS],
            "dpi": DPI,
            "figures": f.made}
    with open(os.path.join(a.out, "figures.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    for m in f.made:
        print(f"figures.py: wrote {os.path.join(a.out, m['png'])} ({m['what']})")


if __name__ == "__main__":
    main()
