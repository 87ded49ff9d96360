#!/usr/bin/env python3
"""The baselines at equal adaptation and the TTT ablations, on the CPU with the shipped model (issue 18, items 2-3).

    python3 scripts/experiments/equal_adaptation.py [--bin build/wattmoe] [--data-dir data] [--out results/cpu-kjv-small-ablations]
    python3 scripts/experiments/equal_adaptation.py --table-only [--out results/cpu-kjv-small-ablations]

Every row is one `wattmoe run` (windows of 128 tokens, experts priced as 4096x14336 as in static_pruning.py) with or
without THE SAME test-time training: the tuned recipe of docs/results.md (scripts/device/ttt_recipe.sh: router,
norms, LoRA rank 8, AdamW β₁ 0, lr 1e-2 decaying over 45 steps, per-group rates, source guard on), nothing retuned.

1. Tuning (kjv.val.noise10, first 16,384 tokens; LoRA seed 1): every knob of every family, without and with TTT.
   Families: top-2 (the reference), top-1, skip β ∈ {0.3, 0.5, 0.7, 0.9}, top-p ∈ {0.5 … 0.9}, cost-aware routing
   λ ∈ {20, 100, 1000} with step-aware re-pricing (m = 8), static pruning by calibration use r = 1, 2 of 8 (the
   calibration of static_pruning.py: results/cpu-kjv-small-pruning/calibration.json, made if missing).
   THE RULE, fixed before any test number existed: at each adaptation level separately, a family's knob is the one
   with the lowest analytic expert energy whose tuning bits/byte is within 1% of top-2's at the same level; when
   none is, the one with the lowest bits/byte (the table says "none within 1%"). Families without a knob are run as
   they are.
2. Test (kjv.test.noise10, first 32,768 tokens): each family at its chosen knob(s) without TTT (deterministic: one
   run) and with TTT over LoRA seeds 1, 2, 3 (mean, sd, min-max). A knob chosen at one level is also run at the other,
   so every point has its twin.
3. TTT ablations (kjv.test.noise10, 32,768 tokens, top-2, LoRA seed 1), each one change to the recipe: parameter
   groups, objectives, guards, triggers, batch vs finer windows; the clean stream (kjv.test) with and without TTT is
   the reference for the gap closed = (no TTT − TTT) / (no TTT − clean, no TTT).
The streams are cut (16k tuning, 32k test tokens) so that everything runs in about 15 minutes on 2 CPU cores.

What is measured and what is not: bits/byte, experts/token and the adaptation's time share (adapt_seconds over
adapt + infer seconds) are COMPUTED/MEASURED ON THIS CPU. Energy is ANALYTIC: the cost model's expected expert
energy per token of the scored windows (expert_j_per_token), relative to static top-2 on the same split; a TTT run's
energy "with adaptation" divides it by (1 − s), s = the adaptation's share of the joules as the run's simulated
plant prices it (plant.adapt_joules / plant.joules: per window served to 16 streams, one forward and one backward of
the window; SIMULATED). Nothing here is a measured joule.

Records: OUT/records.jsonl, one line per run (label, section, family, knob, ttt, seed, the command, commit, date and
the run's numbers, expert matrices dropped); rows already there are kept, not rerun (delete the folder for a fresh
run). OUT/meta.json: the command of the whole, commit, date, the tuning picks. OUT/table.md (and stdout) is made from
the records only (`--table-only`), and so are docs/figures/equal_adaptation.png and ttt_ablations.png
(scripts/experiments/figures.py). Paths are relative to the repository root (the script runs there).
"""
import datetime, json, os, shlex, statistics, sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattmoe_cli import (calibration, experiment_args, git_commit, read_jsonl, require_inputs, ttt_recipe,  # noqa: E402
                         wattmoe_json, write_table)

WHO = "equal_adaptation.py"
TUNE_DATA, TEST_DATA, CLEAN_DATA = "kjv.val.noise10.txt", "kjv.test.noise10.txt", "kjv.test.txt"
TUNE_TOKENS, TEST_TOKENS = 16384, 32768
SEEDS = (1, 2, 3)
QUALITY_RULE = 0.01                       # the tuning rule's bits/byte tolerance against top-2 at the same level
TARGET_CUT, TARGET_LOSS, TARGET_OVERHEAD = 0.20, 0.05, 0.10  # the seed's targets
SHAPE = ["--expert-shape", "4096x14336"]
CAL_DEFAULT = os.path.join("results", "cpu-kjv-small-pruning", "calibration.json")
TTT = ttt_recipe(SRC)


def families(cal):
    """(family, [(knob label, run args)]) in table order; one-entry families have no knob to tune."""
    return [("top-2", [("top-2", [])]),
            ("top-1", [("top-1", ["--k-max", "1"])]),
            ("skip", [(f"skip β {b}", ["--policy", "skip", "--beta", b]) for b in ("0.3", "0.5", "0.7", "0.9")]),
            ("top-p", [(f"top-p {p}", ["--policy", "top_p", "--route-top-p", p])
                       for p in ("0.5", "0.6", "0.7", "0.8", "0.9")]),
            ("cost", [(f"cost λ {l} m 8", ["--policy", "cost", "--lambda", l, "--reuse-min-tokens", "8"])
                      for l in ("20", "100", "1000")]),
            ("prune r=1", [("prune r=1", ["--prune-least-used", "1", "--calibration", cal])]),
            ("prune r=2", [("prune r=2", ["--prune-least-used", "2", "--calibration", cal])])]


def recipe_with(*, groups=None, drop=(), add=()):
    """The recipe with its --ttt-groups replaced (LoRA flags dropped when the groups have no LoRA), flags in `drop`
    removed (with their value) and `add` appended."""
    out = []
    skip = set(drop)
    if groups is not None and "lora" not in groups and groups != "all":
        skip |= {"--lora-rank", "--ttt-lr-lora"}
    i = 0
    while i < len(TTT):
        flag = TTT[i]
        has_value = i + 1 < len(TTT) and not TTT[i + 1].startswith("--")
        if flag in skip:
            i += 2 if has_value else 1
            continue
        out.append(flag)
        if has_value:
            out.append(groups if (flag == "--ttt-groups" and groups is not None) else TTT[i + 1])
        i += 2 if has_value else 1
    return out + list(add)


# (group, label, data, args): each one change to the recipe (LoRA seed 1, top-2, the test stream); None = the
# test section's top-2 + TTT seed 1 row (the recipe itself) and top-2 without TTT.
ABLATIONS = [
    ("reference", "clean stream (kjv.test), no TTT", CLEAN_DATA, []),
    ("reference", "clean stream (kjv.test), TTT", CLEAN_DATA, TTT),
    ("parameter groups", "router only", TEST_DATA, recipe_with(groups="router")),
    ("parameter groups", "norms only", TEST_DATA, recipe_with(groups="norms")),
    ("parameter groups", "LoRA only (rank 8)", TEST_DATA, recipe_with(groups="lora")),
    ("parameter groups", "all weights (recipe's lr 1e-2)", TEST_DATA, recipe_with(groups="all")),
    ("parameter groups", "all weights, lr 1e-3", TEST_DATA, recipe_with(groups="all", drop=("--ttt-lr",),
                                                                         add=("--ttt-lr", "1e-3"))),
    ("objective", "entropy (TENT/EATA gate) instead of next-token", TEST_DATA,
     recipe_with(add=("--ttt-nll", "0", "--ttt-entropy", "1"))),
    ("objective", "next-token + expected expert energy (weight 1)", TEST_DATA, recipe_with(add=("--ttt-energy", "1"))),
    ("objective", "next-token + router entropy (weight 0.1)", TEST_DATA,
     recipe_with(add=("--ttt-router-entropy", "0.1"))),
    ("guards", "source guard off", TEST_DATA, recipe_with(add=("--ttt-source-check", "0"))),
    ("guards", "+ anchor, entropy-collapse and loss guards", TEST_DATA,
     recipe_with(add=("--ttt-anchor", "1", "--ttt-entropy-floor", "0.3", "--ttt-loss-margin", "0.1"))),
    ("triggers", "every 4th window", TEST_DATA, recipe_with(add=("--ttt-trigger", "every", "--ttt-every", "4"))),
    ("triggers", "complexity (loss > 1.05 × its EMA)", TEST_DATA,
     recipe_with(add=("--ttt-trigger", "complexity", "--ttt-complexity", "1.05"))),
    ("triggers", "adaptive (interval doubles while the gain is small)", TEST_DATA, recipe_with(add=("--ttt-trigger", "adaptive"))),
    ("granularity", "batch: the last 4 windows, every window", TEST_DATA, recipe_with(add=("--ttt-replay", "4"))),
    ("granularity", "batch: the last 4 windows, every 4th window", TEST_DATA,
     recipe_with(add=("--ttt-replay", "4", "--ttt-trigger", "every", "--ttt-every", "4"))),
    ("granularity", "episodic: reset after every window", TEST_DATA, recipe_with(add=("--ttt-episodic",))),
    ("granularity", "32-token windows, no TTT", TEST_DATA, ["--seq", "32"]),
    ("granularity", "32-token windows, TTT", TEST_DATA, ["--seq", "32"] + TTT),
]
SEQ32_REF = "32-token windows, no TTT"


def key(r):
    return f"{r['section']}|{r['label']}|{'ttt' if r['ttt'] else 'none'}|{r.get('seed')}"


def slim(out):
    """The run's numbers the tables and figures read (the expert matrices stay out: records stay small)."""
    keep = ("bits_per_byte", "nats_per_token", "experts_per_token", "expert_j_per_token", "tokens", "bytes", "windows",
            "seq", "adapted_windows", "adapt_seconds", "infer_seconds", "adapt_infer_ratio", "resets", "reset_reasons",
            "source_checks", "probation_windows", "suspended_windows", "verdict")
    r = {k: out[k] for k in keep if k in out}
    p = out.get("plant", {})
    r["plant"] = {k: p.get(k) for k in ("label", "joules", "adapt_joules", "joules_per_token", "streams")}
    r["routing"] = {"policy": out["routing"].get("policy"), "knobs": out["routing"].get("knobs"),
                    "pruned": out["routing"].get("pruned")}
    if "ttt" in out:
        r["ttt_config"] = out["ttt"]
    return r


class Runner:
    def __init__(self, a):
        self.a, self.path = a, os.path.join(a.out, "records.jsonl")
        self.recs = read_jsonl(self.path, WHO) if os.path.isfile(self.path) else []
        self.done = {key(r) for r in self.recs}
        self.commit, self.date = git_commit(SRC), datetime.date.today().isoformat()

    def run(self, section, label, family, data, tokens, args, ttt, seed=None):
        row = {"section": section, "label": label, "family": family, "ttt": bool(ttt), "seed": seed}
        if key(row) in self.done:
            return
        extra = (list(ttt) + ["--lora-seed", str(seed)]) if ttt else []
        out, cmd = wattmoe_json(self.a.bin, ["run", "--model", self.a.model, "--data",
                                             os.path.join(self.a.data_dir, data), "--max-tokens", str(tokens)]
                                + SHAPE + list(args) + extra, WHO)
        row.update({"data": data, "command": cmd, "commit": self.commit, "date": self.date, "device": "cpu",
                    "energy_label": "analytic (expert_j_per_token); adaptation share simulated (plant)"})
        row.update(slim(out))
        with open(self.path, "a") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.recs.append(row)
        self.done.add(key(row))
        print(f"{WHO}: {section}: {label}{' + TTT seed ' + str(seed) if ttt else ''}: bits/byte "
              f"{out['bits_per_byte']:.4f}, {out['experts_per_token']:.3f} experts/token", file=sys.stderr)


def fail(msg):
    print(f"{WHO}: error: {msg}", file=sys.stderr)
    sys.exit(2)


def picks(recs):
    """{(family, ttt): (knob label, within rule?)} by THE RULE (module doc) from the tuning records."""
    tune = [r for r in recs if r["section"] == "tune"]
    out = {}
    for ttt in (False, True):
        level = [r for r in tune if r["ttt"] == ttt]
        ref = next((r for r in level if r["label"] == "top-2"), None)
        if ref is None:
            continue
        limit = (1 + QUALITY_RULE) * ref["bits_per_byte"]
        for fam in sorted({r["family"] for r in level}):
            cands = [r for r in level if r["family"] == fam]
            ok = [r for r in cands if r["bits_per_byte"] <= limit]
            best = (min(ok, key=lambda r: (r["expert_j_per_token"], r["bits_per_byte"])) if ok
                    else min(cands, key=lambda r: r["bits_per_byte"]))
            out[(fam, ttt)] = (best["label"], bool(ok))
    return out


def run(a):
    cal = a.calibration
    meta_path = os.path.join(a.out, "meta.json")
    meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
    meta["calibration_command"] = calibration(a.bin, a.model, a.data_dir, cal, WHO)
    r = Runner(a)
    fams = families(cal)
    for ttt in (None, TTT):  # 1. tuning: every knob at both levels
        for fam, knobs in fams:
            for label, args in knobs:
                r.run("tune", label, fam, TUNE_DATA, TUNE_TOKENS, args, ttt, SEEDS[0] if ttt else None)
    chosen = picks(r.recs)
    args_of = {label: args for _, knobs in fams for label, args in knobs}
    for fam, knobs in fams:  # 2. test: the chosen knob(s) of each family, both levels, TTT over the seeds
        for label in dict.fromkeys(chosen[(fam, t)][0] for t in (False, True)):
            r.run("test", label, fam, TEST_DATA, TEST_TOKENS, args_of[label], None)
            for seed in SEEDS:
                r.run("test", label, fam, TEST_DATA, TEST_TOKENS, args_of[label], TTT, seed)
    for group, label, data, args in ABLATIONS:  # 3. ablations (the TTT flags are part of args)
        routing, ttt = strip_ttt(args)
        r.run("ablation", label, group, data, TEST_TOKENS, routing, ttt, SEEDS[0] if ttt else None)
    meta.update({"command": f"python3 scripts/experiments/{WHO} " + shlex.join(sys.argv[1:]), "commit": r.commit,
                 "date": r.date, "device": "cpu", "ttt_recipe": TTT, "tune_tokens": TUNE_TOKENS,
                 "test_tokens": TEST_TOKENS, "seeds": list(SEEDS), "rule": RULE_TEXT,
                 "picks": {f"{fam} | {'TTT' if t else 'no TTT'}": v[0] for (fam, t), v in picks(r.recs).items()}})
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")


def strip_ttt(args):
    """(routing args, TTT args or None): an ablation's flags split at --ttt (everything from --ttt on is TTT)."""
    if "--ttt" not in args:
        return list(args), None
    i = args.index("--ttt")
    return list(args[:i]), list(args[i:])


RULE_TEXT = ("at each adaptation level, the knob with the lowest analytic expert energy whose tuning bits/byte "
             f"(kjv.val.noise10, {TUNE_TOKENS} tokens) is within {100 * QUALITY_RULE:g}% of top-2's at the same "
             "level; none within: the lowest bits/byte")


def stats(values):
    """mean, sd (0 for one value), min, max."""
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, min(values), max(values))


def adapt_share(r):
    """The adaptation's share of the run's joules as its simulated plant prices it (0 without TTT)."""
    p = r["plant"]
    return (p["adapt_joules"] or 0) / p["joules"] if p.get("joules") else 0.0


def time_share(r):
    """The adaptation's share of the run's CPU time (measured): adapt / (adapt + infer) seconds."""
    t = r.get("adapt_seconds", 0) + r.get("infer_seconds", 0)
    return r.get("adapt_seconds", 0) / t if t else 0.0


def summarise(out):
    """Everything the table and the figures show, from OUT/records.jsonl alone: {"picks", "tune", "test",
    "ablations", "claims", "meta"}. test rows: family, knob, ttt, n, bpb (mean, sd, min, max), experts/token, analytic
    expert energy vs static top-2 (inference only and with the adaptation's simulated share), time share."""
    path = os.path.join(out, "records.jsonl")
    if not os.path.isfile(path):
        fail(f"missing record {path}")
    recs = read_jsonl(path, WHO)
    meta_path = os.path.join(out, "meta.json")
    meta = json.load(open(meta_path)) if os.path.isfile(meta_path) else {}
    test = [r for r in recs if r["section"] == "test"]
    base = next((r for r in test if r["label"] == "top-2" and not r["ttt"]), None)
    if base is None:
        fail(f"{path}: no test row of top-2 without TTT")
    e0, b0 = base["expert_j_per_token"], base["bits_per_byte"]
    rows = []
    for (fam, label, ttt) in dict.fromkeys((r["family"], r["label"], r["ttt"]) for r in test):
        rs = [r for r in test if (r["family"], r["label"], r["ttt"]) == (fam, label, ttt)]
        e_inf = statistics.fmean(r["expert_j_per_token"] for r in rs) / e0
        share = statistics.fmean(adapt_share(r) for r in rs)
        rows.append({"family": fam, "knob": label, "ttt": ttt, "n": len(rs),
                     "bpb": stats([r["bits_per_byte"] for r in rs]),
                     "experts": statistics.fmean(r["experts_per_token"] for r in rs),
                     "energy": e_inf, "adapt_share": share, "energy_with_adapt": e_inf / (1 - share),
                     "time_share": statistics.fmean(time_share(r) for r in rs),
                     "resets": statistics.fmean(r.get("resets", 0) for r in rs)})
    top2_ttt = next((x for x in rows if x["knob"] == "top-2" and x["ttt"]), None)
    for x in rows:
        x["vs_static_top2"] = x["bpb"][0] / b0 - 1
        ref = top2_ttt if x["ttt"] else next(y for y in rows if y["knob"] == "top-2" and not y["ttt"])
        x["vs_top2_same_level"] = x["bpb"][0] / ref["bpb"][0] - 1 if ref else float("nan")
        x["energy_vs_same_level"] = (x["energy_with_adapt"] / ref["energy_with_adapt"]) if ref else float("nan")
    abl = ablations(recs, test, base)
    return {"picks": picks(recs), "tune": [r for r in recs if r["section"] == "tune"], "test": rows,
            "ablations": abl, "claims": claims(rows, abl), "meta": meta, "base": base}


def ablations(recs, test, base):
    """Ablation rows (group, label, bpb, vs no TTT, gap closed, time share, adapted windows, resets)."""
    ab = {r["label"]: r for r in recs if r["section"] == "ablation"}
    clean = ab.get("clean stream (kjv.test), no TTT")
    recipe = next((r for r in test if r["label"] == "top-2" and r["ttt"] and r["seed"] == SEEDS[0]), None)
    rows = [("no TTT", "top-2, no TTT (the noisy stream's reference)", base),
            ("recipe", "router, norms, LoRA; next-token; source guard; every window", recipe)]
    rows += [(g, l, ab.get(l)) for g, l, _, _ in ABLATIONS]
    out = []
    for group, label, r in rows:
        if r is None:
            continue
        none = ab.get(SEQ32_REF) if label.startswith("32-token") else base
        gap = (none["bits_per_byte"] - r["bits_per_byte"]) / (none["bits_per_byte"] - clean["bits_per_byte"]) \
            if clean and r["data"] == TEST_DATA else None
        out.append({"group": group, "label": label, "ttt": r["ttt"], "bpb": r["bits_per_byte"],
                    "vs_none": r["bits_per_byte"] / none["bits_per_byte"] - 1, "gap_closed": gap,
                    "time_share": time_share(r), "adapt_infer_ratio": r.get("adapt_infer_ratio", 0),
                    "adapt_share": adapt_share(r), "adapted": r.get("adapted_windows", 0), "windows": r["windows"],
                    "resets": r.get("resets", 0)})
    return out


def claims(rows, abl):
    """The seed's headline claims on these numbers: (claim, value text, met?)."""
    out = []

    def best(rs, key):
        return max(rs, key=key) if rs else None

    for loss, only_ttt in ((TARGET_LOSS, False), (TARGET_LOSS, True), (QUALITY_RULE, False), (QUALITY_RULE, True)):
        ok = [x for x in rows if (x["vs_static_top2"] < loss or (loss == QUALITY_RULE and x["vs_static_top2"] <= loss))
              and (x["ttt"] or not only_ttt)]
        b = best(ok, lambda x: 1 - x["energy_with_adapt"])
        cut = 1 - b["energy_with_adapt"] if b else 0.0
        out.append((f"≥ {100 * TARGET_CUT:g}% less energy (adaptation included) at {'<' if loss == TARGET_LOSS else '≤'} "
                    f"{100 * loss:g}% bits/byte loss against static top-2, "
                    f"{'a policy + TTT' if only_ttt else 'any row'}",
                    f"best {100 * cut:.1f}% ({b['knob']}{' + TTT' if b['ttt'] else ''}, bits/byte "
                    f"{100 * b['vs_static_top2']:+.1f}%)" if b else "no row", cut >= TARGET_CUT))
    ttt = [x for x in rows if x["ttt"] and x["vs_top2_same_level"] <= QUALITY_RULE]
    b = best(ttt, lambda x: 1 - x["energy_vs_same_level"])
    cut = 1 - b["energy_vs_same_level"] if b else 0.0
    out.append((f"at equal adaptation: ≥ {100 * TARGET_CUT:g}% less energy than top-2 + TTT within "
                f"{100 * QUALITY_RULE:g}% of its bits/byte",
                f"best {100 * cut:.1f}% ({b['knob']} + TTT, bits/byte {100 * b['vs_top2_same_level']:+.1f}%)" if b
                else "no row", cut >= TARGET_CUT))
    rec = next((x for x in rows if x["knob"] == "top-2" and x["ttt"]), None)
    if rec:
        out.append((f"adaptation overhead < {100 * TARGET_OVERHEAD:g}% (time, this CPU, one stream)",
                    f"{100 * rec['time_share']:.0f}% of the run's time", rec["time_share"] < TARGET_OVERHEAD))
        out.append((f"adaptation overhead < {100 * TARGET_OVERHEAD:g}% (energy, simulated plant, 16 streams a window)",
                    f"{100 * rec['adapt_share']:.1f}% of the joules", rec["adapt_share"] < TARGET_OVERHEAD))
    gap = next((x for x in abl if x["group"] == "recipe"), None)
    if gap and gap["gap_closed"] is not None:
        out.append(("the gap to the clean stream closed by TTT on kjv.test.noise10 (no target set)",
                    f"{100 * gap['gap_closed']:.0f}% (seed {SEEDS[0]})", None))
    return out


def pct(x):
    return f"{100 * x:+.1f}%"


def table(out):
    s = summarise(out)
    m, L = s["meta"], []
    L.append(f"Records: {out}/records.jsonl ({m.get('date', '?')}, commit {m.get('commit', '?')}, CPU). Bits/byte "
             "and time: computed/measured on the CPU. Energy: ANALYTIC (the cost model's expected expert energy, "
             "experts as 4096x14336), relative to static top-2 on kjv.test.noise10; \"+ adapt.\" divides it by "
             "(1 − the adaptation's share of the joules as the SIMULATED plant prices it, 16 streams a window).\n")
    L.append(f"### Knobs chosen on the tuning split\n\nRule (fixed in advance): {RULE_TEXT}.\n")
    L.append("| family | knobs tried | tuning bits/byte of top-2 (no TTT / TTT) | chosen without TTT | chosen with TTT |")
    L.append("|---|---|---|---|---|")
    tune = s["tune"]
    t2 = {t: next((r["bits_per_byte"] for r in tune if r["label"] == "top-2" and r["ttt"] == t), float("nan"))
          for t in (False, True)}
    for fam in dict.fromkeys(r["family"] for r in tune):
        knobs = list(dict.fromkeys(r["label"] for r in tune if r["family"] == fam))
        cells = []
        for t in (False, True):
            lab, ok = s["picks"].get((fam, t), ("–", True))
            r = next((x for x in tune if x["label"] == lab and x["ttt"] == t), None)
            cells.append(f"{lab} ({pct(r['bits_per_byte'] / t2[t] - 1)}, {r['experts_per_token']:.2f} e/t)"
                         + ("" if ok else " none within 1%") if r else "–")
        L.append(f"| {fam} | {', '.join(knobs)} | {t2[False]:.4f} / {t2[True]:.4f} | {cells[0]} | {cells[1]} |")
    L.append(f"\n### Test: kjv.test.noise10, {m.get('test_tokens', TEST_TOKENS)} tokens (TTT: mean ± sd over LoRA "
             f"seeds {', '.join(map(str, m.get('seeds', SEEDS)))})\n")
    L.append("| family | knob | TTT | bits/byte | vs static top-2 | vs top-2 at the same adaptation | experts/token | "
             "expert energy vs static top-2 (ANALYTIC) | + adapt. (analytic × simulated share) | vs top-2 at the same "
             "adaptation, + adapt. | adaptation's time share (CPU) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for x in s["test"]:
        b = x["bpb"]
        L.append(f"| {x['family']} | {x['knob']} | {'TTT ×' + str(x['n']) if x['ttt'] else 'no'} | "
                 f"{b[0]:.4f}{f' ± {b[1]:.4f}' if x['n'] > 1 else ''} | {pct(x['vs_static_top2'])} | "
                 f"{pct(x['vs_top2_same_level'])} | {x['experts']:.3f} | {x['energy']:.3f} | "
                 f"{x['energy_with_adapt']:.3f} | {x['energy_vs_same_level']:.3f} | {100 * x['time_share']:.0f}% |")
    L.append(f"\n### TTT ablations: kjv.test.noise10, {m.get('test_tokens', TEST_TOKENS)} tokens, top-2, LoRA seed "
             f"{SEEDS[0]}; each row one change to the recipe\n")
    L.append("| group | variant | bits/byte | vs no TTT | gap closed (to the clean stream) | adapted windows | "
             "resets | adaptation's time share (CPU) | adapt/infer time | adaptation's share of the joules "
             "(SIMULATED) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for x in s["ablations"]:
        gap = f"{100 * x['gap_closed']:.0f}%" if x["gap_closed"] is not None else "–"
        L.append(f"| {x['group']} | {x['label']} | {x['bpb']:.4f} | {pct(x['vs_none'])} | {gap} | "
                 f"{x['adapted']}/{x['windows']} | {x['resets']} | {100 * x['time_share']:.0f}% | "
                 f"{x['adapt_infer_ratio']:.2f} | {100 * x['adapt_share']:.1f}% |")
    L.append("\n### The seed's claims on these numbers\n")
    L.append("| claim | on these records | met? |")
    L.append("|---|---|---|")
    for c, v, met in s["claims"]:
        L.append(f"| {c} | {v} | {'—' if met is None else ('yes' if met else '**no**')} |")
    write_table(out, "\n".join(L) + "\n")


def main():
    ap = experiment_args(__doc__, os.path.join("results", "cpu-kjv-small-ablations"))
    ap.add_argument("--calibration", default=CAL_DEFAULT,
                    help=f"static pruning's calibration JSON (made if missing; default {CAL_DEFAULT})")
    ap.add_argument("--table-only", action="store_true", help="only the table, from OUT/records.jsonl")
    a = ap.parse_args()
    os.chdir(SRC)  # every path (and every command recorded) is relative to the repository root
    os.makedirs(a.out, exist_ok=True)
    if not a.table_only:
        require_inputs([a.bin] + [os.path.join(a.data_dir, d) for d in (TUNE_DATA, TEST_DATA, CLEAN_DATA, "kjv.train.txt")],
                       a.data_dir, WHO)
        run(a)
    table(a.out)


if __name__ == "__main__":
    main()
