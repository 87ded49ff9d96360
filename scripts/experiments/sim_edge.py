#!/usr/bin/env python3
"""A 15 W power budget on a simulated edge module, with and without test-time training (CPU; energy SIMULATED).

    python3 scripts/experiments/sim_edge.py [--bin build/wattmoe] [--data-dir data] [--out results/sim-edge]
                                            [--tokens 8192] [--table-only]

models/kjv-small runs on the CPU; each window's routed work is priced on the simulated GPU with the edge profile
scripts/experiments/sim_edge.json (an Orin-class 15-60 W module with shared LPDDR5; docs/energy.md "An edge
profile": where each value comes from, all approximate, energy-per-op constants chosen). Every expert is priced as an
OLMoE-sized expert (EXPERT_SHAPE, bf16), the model's own experts being far too small to load a GPU. Nothing here is
measured.

1. The workload, chosen on kjv.val.noise10 (its first --tokens tokens): --sim-streams, the first of STREAMS at which
   unbudgeted top-2 draws at least LOAD_W on average (a fifth above the budget, so the controller has to act).
2. Reported on kjv.test.noise10 (its first --tokens tokens), at that workload:
     top2            unbudgeted top-2, no adaptation
     top2_ttt_seedS  the same with the tuned TTT (scripts/device/ttt_recipe.sh), LoRA seeds 1, 2, 3
     b15             --power-budget-w 15, the controller's default knob and ladder
     b15_ttt_seedS   the same with TTT
   The simulated plant charges the adaptation's own work inside each step (plant/sim_plant.h: its passes over the
   window's own work, a backward as twice the FLOPs with the weights read once), so the controller sees it and the
   joules include it; sim_adapt_j says how much (above idle: mJ/token without adaptation = (J - adapt J) / tokens).

Records in --out: runs.jsonl (one line per run: name, command, the summary without its expert matrices),
windows.jsonl (one line per window of each run: power, step and adaptation joules, bits/token, experts/token, the
controller's target, effort, ladder rung and batch share), meta.json (commit, date, the workload chosen and the val powers it was chosen on),
table.md (made from the records: --table-only). scripts/experiments/figures.py draws sim_edge.png from them.
"""
import json, math, os, sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wattmoe_cli import experiment_args, read_jsonl, ttt_recipe, wattmoe_json, write_records, write_table  # noqa: E402  (the one place the CLI is called)

PROFILE = os.path.join("scripts", "experiments", "sim_edge.json")
EXPERT_SHAPE = "2048x1024"  # OLMoE-1B-7B's expert (hidden 2048, expert FFN 1024)
BUDGET_W, LOAD_W = 15.0, 18.0
STREAMS = (1, 2, 4, 8, 16, 32)
SEEDS = (1, 2, 3)
TTT = ttt_recipe(SRC)
# The fields of a window record kept in windows.jsonl (the rest is in the run's own --log, not committed).
WINDOW_KEYS = ("window", "tokens", "bits_per_token", "experts_per_token", "sim_power_w", "sim_step_j", "sim_step_s",
               "sim_adapt_j", "sim_adapt_s", "adapted")


def plant_args(streams):
    return ["--sim-params", PROFILE, "--expert-shape", EXPERT_SHAPE, "--sim-streams", str(streams)]


def run(binary, args, log):
    out, cmd = wattmoe_json(binary, ["run", *args, "--log", log], "sim_edge.py")
    return out, cmd


def choose_streams(a, base):
    """--sim-streams on val: the first of STREAMS whose unbudgeted top-2 mean power reaches LOAD_W."""
    data = os.path.join(a.data_dir, "kjv.val.noise10.txt")
    seen = {}
    for s in STREAMS:
        out, _ = run(a.bin, [*base, "--data", data, *plant_args(s)], os.path.join(a.out, "val.tmp.jsonl"))
        seen[s] = out["plant"]["mean_power_w"]
        print(f"sim_edge.py: val, {s} streams: top-2 draws {seen[s]:.2f} W (simulated)", file=sys.stderr)
        if seen[s] >= LOAD_W:
            os.remove(os.path.join(a.out, "val.tmp.jsonl"))
            return s, seen
    sys.exit(f"sim_edge.py: error: no workload of {STREAMS} streams draws {LOAD_W} W on val: {seen}")


def experiment(a):
    base = ["--model", a.model, "--max-tokens", str(a.tokens)]
    streams, val_power = choose_streams(a, base)
    test = ["--data", os.path.join(a.data_dir, "kjv.test.noise10.txt"), *base, *plant_args(streams)]
    plan = [("top2", [])] + [(f"top2_ttt_seed{s}", [*TTT, "--lora-seed", str(s)]) for s in SEEDS]
    budget = ["--power-budget-w", f"{BUDGET_W:g}"]
    plan += [("b15", budget)] + [(f"b15_ttt_seed{s}", [*budget, *TTT, "--lora-seed", str(s)]) for s in SEEDS]
    runs, windows, commands = [], [], {}
    tmp = os.path.join(a.out, "window.tmp.jsonl")
    for name, extra in plan:
        out, commands[name] = run(a.bin, [*test, *extra], tmp)
        for k in [k for k in out if k.startswith("expert_counts")]:
            del out[k]
        runs.append({"name": name, "command": commands[name], "summary": out})
        with open(tmp) as f:
            for line in f:
                w = json.loads(line)
                rec = {"run": name, **{k: w[k] for k in WINDOW_KEYS if k in w}}
                if "control" in w:
                    c = w["control"]
                    rec.update(target_w=c["target"], u=c["u"], rung=c["rung"], batch_scale=c["batch_scale"])
                windows.append(rec)
        print(f"sim_edge.py: {name}: bits/byte {out['bits_per_byte']:.4f}, {out['plant']['mean_power_w']:.2f} W, "
              f"{1e3 * out['plant']['joules_per_token']:.4f} mJ/token (simulated)", file=sys.stderr)
    os.remove(tmp)
    write_records(a.out, "sim_edge.py", {"runs.jsonl": runs, "windows.jsonl": windows}, device="cpu",
                  label="simulated (the edge profile; not measured)", profile=PROFILE,
                  sim_params=runs[0]["summary"]["plant"].get("gpu"), expert_shape=EXPERT_SHAPE, budget_w=BUDGET_W,
                  load_w=LOAD_W, tokens=a.tokens, streams=streams,
                  val_top2_power_w={str(k): v for k, v in val_power.items()}, seeds=list(SEEDS))


def power_stats(ws, budget):
    """Mean and max window power, the worst 4-window block, and the share of time above the budget (and +5%)."""
    p = [w["sim_power_w"] for w in ws]
    s = [w["sim_step_s"] for w in ws]
    blocks = [sum(p[i:i + 4]) / 4 for i in range(0, len(p) - 3, 4)]
    t = sum(s)
    return {"mean_w": sum(pi * si for pi, si in zip(p, s)) / t, "max_w": max(p), "max_block_w": max(blocks),
            "share": sum(w.get("batch_scale", 1.0) for w in ws) / len(ws),
            "over": sum(si for pi, si in zip(p, s) if pi > budget) / t,
            "over5": sum(si for pi, si in zip(p, s) if pi > 1.05 * budget) / t}


def mean_sd(xs):
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def summarise(out):
    """Per run and per group (TTT over seeds) the numbers of table.md, from the records alone."""
    runs = {r["name"]: r["summary"] for r in read_jsonl(os.path.join(out, "runs.jsonl"))}
    ws = {}
    for w in read_jsonl(os.path.join(out, "windows.jsonl")):
        ws.setdefault(w["run"], []).append(w)
    meta = json.load(open(os.path.join(out, "meta.json")))
    rows = {}
    for name, s in runs.items():
        pl = s["plant"]
        adapt = pl.get("adapt_joules", 0.0)
        st = power_stats(ws[name], meta["budget_w"])
        seg = s.get("budget", {}).get("segments", [{}])[0]  # the verdict's: the second half's mean
        rows[name] = {"bpb": s["bits_per_byte"], "ept": s["experts_per_token"], "j_tok": pl["joules_per_token"],
                      "j_tok_no_adapt": pl["joules_per_token"] * (1 - adapt / pl["joules"]),
                      "adapt_share": adapt / pl["joules"], "held": s.get("budget", {}).get("held"),
                      "half_w": seg.get("mean", float("nan")), **st}
    return meta, rows


def table(out):
    meta, rows = summarise(out)
    md = [f"Simulated edge module ({meta['sim_params']}, {meta['profile']}; experts priced as {meta['expert_shape']}, "
          f"{meta['streams']} streams per 20 ms step, chosen on kjv.val.noise10), models/kjv-small on the first "
          f"{meta['tokens']} tokens of kjv.test.noise10; {meta['date']}, commit {meta['commit']}. **Simulated**, "
          f"not measured.\n",
          "| run | bits/byte | experts/token | streams served | mean W | 2nd-half mean W | max window W | worst 4-window W | "
          "time > 15 W | time > 15.75 W | mJ/token (with adaptation) | mJ/token without adaptation | "
          "adaptation's share | held (verdict) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def groups():
        for g in ("top2", "b15"):
            yield g, [rows[g]]
            seeds = [rows[n] for n in sorted(rows) if n.startswith(g + "_ttt_seed")]
            if seeds:
                yield f"{g} + TTT ({len(seeds)} seeds, mean (sd))", seeds

    def cell(xs, key, fmt, scale=1.0):
        if any(math.isnan(x[key]) for x in xs):
            return "—"
        m, sd = mean_sd([x[key] * scale for x in xs])
        return fmt.format(m) + (f" ({fmt.format(sd)})" if len(xs) > 1 else "")

    for name, xs in groups():
        held = {x["held"] for x in xs}
        md.append(f"| {name} | {cell(xs, 'bpb', '{:.4f}')} | {cell(xs, 'ept', '{:.3f}')} | "
                  f"{cell(xs, 'share', '{:.0f}%', 100)} | "
                  f"{cell(xs, 'mean_w', '{:.2f}')} | {cell(xs, 'half_w', '{:.2f}')} | {cell(xs, 'max_w', '{:.2f}')} | {cell(xs, 'max_block_w', '{:.2f}')} | "
                  f"{cell(xs, 'over', '{:.1f}%', 100)} | {cell(xs, 'over5', '{:.1f}%', 100)} | "
                  f"{cell(xs, 'j_tok', '{:.5f}', 1e3)} | {cell(xs, 'j_tok_no_adapt', '{:.5f}', 1e3)} | "
                  f"{cell(xs, 'adapt_share', '{:.1f}%', 100)} | "
                  f"{'/'.join(sorted('—' if h is None else ('yes' if h else 'no') for h in held))} |")
    md.append("")
    for g in ("top2", "b15"):
        ttt = [rows[n] for n in sorted(rows) if n.startswith(g + "_ttt_seed")]
        if not ttt:
            continue
        b = rows[g]
        dbpb = mean_sd([x["bpb"] - b["bpb"] for x in ttt])[0]
        dj = mean_sd([x["j_tok"] / b["j_tok"] - 1 for x in ttt])[0]
        md.append(f"- {g}: TTT changes bits/byte by {dbpb:+.4f} ({100 * dbpb / b['bpb']:+.2f}%) and mJ/token, its "
                  f"adaptation included, by {100 * dj:+.2f}% (mean over seeds).")
    text = "\n".join(md) + "\n"
    write_table(out, text)


def main():
    ap = experiment_args(__doc__, os.path.join("results", "sim-edge"))
    ap.add_argument("--tokens", type=int, default=8192, help="tokens of each stream (val and test)")
    ap.add_argument("--table-only", action="store_true", help="only table.md, from the records in --out")
    a = ap.parse_args()
    os.chdir(SRC)
    os.makedirs(a.out, exist_ok=True)
    if not a.table_only:
        experiment(a)
    table(a.out)


if __name__ == "__main__":
    main()
