#!/usr/bin/env python3
"""Markdown table and goal checks of the measured energy of routing policies (stdlib only).

Reads the JSONL files bench/energy_policies.cpp writes (one object per line; "kind": idle | quality | window |
skipped | calibration; any number of files and models) and prints, per model and mode, one row per (point, kernels):

  median J/token above idle   (J - idle_W * s) / tokens of each window, idle_W = mean of the model's idle records
                              (start and end of its run); the median over reps, in mJ
  vs top-2                    relative to the model's own top-k (the row marked baseline) on the SAME kernels
  spread                      (max - min) / median of J/token above idle over the reps
  tokens/s, time vs top-2     median tokens/s; time per token relative to top-2 (same kernels)
  bits/byte                   the point's quality pass (the text's first N tokens, `wattmoe eval`'s windows) when
                              measured, else the median of its windows' own bits/byte (marked *); with a held-out
                              pass (energy_policies --report-data) "tune / held-out", the tuning split first
  experts/token, active/step  median (token, expert) pairs per token and distinct experts per MoE layer-step
  predicted vs top-2          the analytic J/token (eval/step_work.h: experts by their routed counts + the dense rest)
                              relative to top-2's: the saving the removed expert work predicts
  board mJ/token, W           whole-board J/token (idle included) and mean power

Goals (reported PASS / FAIL / n/a; the exit status is 0 unless the input is unreadable):
  G1  no point costs more time or J/token above idle than top-2 (same kernels, same mode) at the same or fewer
      experts/token (a tolerance of --tolerance, default 2%, for measurement noise); points on other kernels than
      the fused top-2 (not the host-routed top-2 baseline) are also listed against it (the product's baseline)
  G2  top-1 (topk k_max=1) saves >= 80% of the J/token share its removed expert work predicts:
      1 - J1/J2 >= 0.8 * (1 - A1/A2), J above idle, A analytic, per mode
  G3  on --goal-model (default medium): the best point within 1% bits/byte of top-2 cuts J/token above idle by
      >= 30% in prefill and >= 15% in decode at 8 streams (decode8, and slots8 where measured). With held-out passes the point is chosen on the tuning
      split's bits/byte and must also stay within 1% on the held-out text, which is the one reported

    python3 bench/energy_table.py OUT/*.jsonl [--out table.md] [--json goals.json] [--goal-model medium]
"""
import argparse, json, math, statistics, sys
from collections import defaultdict


def fail(msg):
    print(f"energy_table.py: {msg}", file=sys.stderr)
    sys.exit(2)


def num(x):
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(paths):
    recs = []
    for p in paths:
        try:
            with open(p) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            recs.append(json.loads(line))
                        except ValueError as e:
                            fail(f"{p}:{n}: not JSON ({e})")
        except OSError as e:
            fail(f"{p}: {e.strerror}")
    if not any(r.get("kind") == "window" for r in recs):
        fail(f"no window records in {', '.join(paths)}")
    return recs


def is_top1(spec):
    k = (spec or {}).get("knobs", {})
    return (spec or {}).get("policy") == "topk" and k.get("k_max") == 1 and not k.get("mask_least_used") \
        and not k.get("mask_experts")


def above_idle(w, idle):
    """A window's J/token above idle, (J - idle_W * s) / tokens; None when a field or the idle power is missing."""
    j, s, t = num(w.get("joules")), num(w.get("seconds")), w.get("tokens") or 0
    return (j - idle * s) / t if None not in (j, s, idle) and t else None


def summarise(recs):
    """{model: {"idle_w", "card", "rows": {(mode, point, kernels): row}, "skipped": [...]}}; a row's "reps" are its
    window records as read (scripts/experiments/figures.py draws the spread over them)"""
    models = defaultdict(lambda: {"idle": [], "windows": defaultdict(list), "quality": {}, "report": {}, "skipped": [],
                                  "card": None})
    for r in recs:
        m = models[r.get("model", "?")]
        kind = r.get("kind")
        if kind == "idle" and num(r.get("watts")) is not None:
            m["idle"].append(r["watts"])
        elif kind == "window":
            m["windows"][(r["mode"], r["point"], r.get("moe_kernels", "?"))].append(r)
            m["card"] = m["card"] or r.get("card")
        elif kind == "quality":
            split = "report" if r.get("split") == "report" else "quality"
            m[split][(r["point"], r.get("moe_kernels", "?"))] = r.get("bits_per_byte")
        elif kind == "skipped":
            m["skipped"].append(r)
    out = {}
    for name, m in models.items():
        if not m["windows"]:
            continue
        idle = statistics.mean(m["idle"]) if m["idle"] else None
        rows = {}
        for key, ws in m["windows"].items():
            mode, point, kernels = key
            above = [above_idle(w, idle) for w in ws]
            a = [x for x in above if x is not None]
            q = m["quality"].get((point, kernels))
            rows[key] = {
                "mode": mode, "point": point, "kernels": kernels, "n": len(ws),
                "baseline": any(w.get("baseline") for w in ws), "top1": is_top1(ws[0].get("point_spec")),
                "spec": ws[0].get("point_spec"), "reps": ws,
                "above": med(above), "spread": (max(a) - min(a)) / med(a) if len(a) > 1 and med(a) else None,
                "board": med([num(w.get("j_per_token")) for w in ws]),
                "tps": med([num(w.get("tokens_per_s")) for w in ws]),
                "watts": med([num(w.get("joules")) / w["seconds"] if num(w.get("joules")) is not None and
                              num(w.get("seconds")) else None for w in ws]),
                "bpb": q if num(q) is not None else med([num(w.get("bits_per_byte")) for w in ws]),
                "bpb_window": num(q) is None,
                "bpb_report": num(m["report"].get((point, kernels))),
                "ept": med([num(w.get("experts_per_token")) for w in ws]),
                "active": med([num(w.get("active_experts_per_layer_step")) for w in ws]),
                "analytic": med([num((w.get("analytic") or {}).get("total_j_per_token")) for w in ws]),
            }
        out[name] = {"idle_w": idle, "idle_records": len(m["idle"]), "card": m["card"], "rows": rows,
                     "skipped": m["skipped"]}
    return out


def rep_cuts(row, base, idle):
    """The cut 1 - J/J_top2 (above idle) of each rep measured for both points (windows paired by their "rep": the
    points are interleaved, so a rep's two windows ran minutes apart at most); [] when none pair."""
    b = {w.get("rep"): above_idle(w, idle) for w in base["reps"]}
    return [1 - a / b[w.get("rep")] for w in row["reps"]
            if (a := above_idle(w, idle)) is not None and b.get(w.get("rep"))]


def baseline(rows, mode, kernels):
    for r in rows.values():
        if r["mode"] == mode and r["kernels"] == kernels and r["baseline"]:
            return r
    return None


def rel(a, b):
    return a / b - 1 if None not in (a, b) and b else None


def pct(x, digits=1):
    return "–" if x is None else f"{100 * x:+.{digits}f}%"


def g(x, scale=1.0, fmt=".4g"):
    return "–" if x is None else format(x * scale, fmt)


def table(name, s):
    lines = [f"### {name}", "",
             f"Card: {s['card'] or '?'}; idle {g(s['idle_w'], fmt='.1f')} W (mean of {s['idle_records']} idle "
             f"windows). J/token above idle = (J − idle W × s) / tokens; medians over reps; \"vs top-2\" against the "
             f"model's top-k on the same kernels.", ""]
    modes = []
    for r in s["rows"].values():
        if r["mode"] not in modes:
            modes.append(r["mode"])
    for mode in modes:
        lines += [f"**{mode}**", "",
                  "| point | kernels | n | mJ/token above idle | vs top-2 | spread | tokens/s | time vs top-2 | "
                  "bits/byte | experts/token | active experts/layer-step | predicted vs top-2 | board mJ/token | W |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        rows = [r for r in s["rows"].values() if r["mode"] == mode]
        rows.sort(key=lambda r: (r["kernels"] != "fused", not r["baseline"]))  # stable: else in run order
        for r in rows:
            b = baseline(s["rows"], mode, r["kernels"])
            t_rel = rel(b["tps"], r["tps"]) if b else None
            spread = "–" if r["spread"] is None else f"{100 * r['spread']:.1f}%"
            lines.append(
                f"| {r['point']}{' (top-2)' if r['baseline'] else ''} | {r['kernels']} | {r['n']} | "
                f"{g(r['above'], 1e3)} | {pct(rel(r['above'], b['above']) if b else None)} | "
                f"{spread} | "
                f"{g(r['tps'], fmt=',.0f')} | {pct(t_rel)} | {g(r['bpb'], fmt='.4f')}{'*' if r['bpb_window'] else ''}"
                f"{'' if r['bpb_report'] is None else ' / ' + g(r['bpb_report'], fmt='.4f')} | "
                f"{g(r['ept'], fmt='.3f')} | {g(r['active'], fmt='.2f')} | "
                f"{pct(rel(r['analytic'], b['analytic']) if b else None)} | {g(r['board'], 1e3)} | "
                f"{g(r['watts'], fmt='.0f')} |")
        lines.append("")
    if s["skipped"]:
        lines.append("Skipped: " + "; ".join(f"{k.get('mode')} {k.get('point')} rep {k.get('rep', '–')}: "
                                             f"{k.get('reason')}" for k in s["skipped"]))
        lines.append("")
    return lines


def goals(summary, tol, goal_model):
    res = []

    def add(goal, model, mode, status, detail):
        res.append({"goal": goal, "model": model, "mode": mode, "status": status, "detail": detail})

    for name, s in summary.items():
        rows = s["rows"]
        modes = list(dict.fromkeys(r["mode"] for r in rows.values()))  # in run order
        for mode in modes:
            # G1: same kernels.
            bad, checked = [], 0
            for r in rows.values():
                if r["mode"] != mode or r["baseline"]:
                    continue
                b = baseline(rows, mode, r["kernels"])
                if not b or None in (r["ept"], b["ept"]) or r["ept"] > b["ept"] + 1e-9:
                    continue
                checked += 1
                dt, dj = rel(b["tps"], r["tps"]), rel(r["above"], b["above"])
                if dt is not None and dt > tol:
                    bad.append(f"{r['point']} ({r['kernels']}): time/token {pct(dt)}")
                if dj is not None and dj > tol:
                    bad.append(f"{r['point']} ({r['kernels']}): J/token above idle {pct(dj)}")
            add("G1", name, mode, "n/a" if not checked else ("FAIL" if bad else "PASS"),
                f"{checked} points at ≤ top-2's experts/token, tolerance {100 * tol:.0f}%" +
                (": " + "; ".join(bad) if bad else ""))
            fused = baseline(rows, mode, "fused")
            if fused:
                worse = []
                for r in rows.values():
                    if r["mode"] != mode or r["kernels"] == "fused" or r["baseline"] or \
                            None in (r["ept"], fused["ept"]) or r["ept"] > fused["ept"] + 1e-9:
                        continue
                    dt, dj = rel(fused["tps"], r["tps"]), rel(r["above"], fused["above"])
                    if (dt is not None and dt > tol) or (dj is not None and dj > tol):
                        worse.append(f"{r['point']} ({r['kernels']}): time {pct(dt)}, J {pct(dj)}")
                if worse:
                    add("G1-fused", name, mode, "FAIL",
                        "against the fused top-2 (the product's path): " + "; ".join(worse))
            # G2: top-1 against its prediction.
            for r in rows.values():
                if r["mode"] != mode or not r["top1"]:
                    continue
                b = baseline(rows, mode, r["kernels"])
                if not b or None in (r["above"], b["above"], r["analytic"], b["analytic"]) or b["above"] <= 0 or \
                        b["analytic"] <= 0:
                    add("G2", name, mode, "n/a", f"{r['point']} ({r['kernels']}): no top-2 J/token above idle "
                                                 f"(> 0) on these kernels")
                    continue
                measured, predicted = 1 - r["above"] / b["above"], 1 - r["analytic"] / b["analytic"]
                ok = predicted > 0 and measured >= 0.8 * predicted
                add("G2", name, mode, "PASS" if ok else "FAIL",
                    f"{r['point']} ({r['kernels']}): measured saving {100 * measured:.1f}% of J/token above idle, "
                    f"predicted {100 * predicted:.1f}% ({100 * measured / predicted if predicted > 0 else 0:.0f}% of "
                    f"it; goal ≥ 80%)")
    # G3.
    # Decode at 8 streams is either form: lockstep (decode8) or serving's slots (slots8); each is judged when measured.
    for mode, need in (("prefill", 0.30), ("decode8", 0.15), ("slots8", 0.15)):
        s = summary.get(goal_model)
        if mode == "slots8" and not any(r["mode"] == mode for r in (s or {"rows": {}})["rows"].values()):
            continue
        if not s or not any(r["mode"] == mode for r in s["rows"].values()):
            add("G3", goal_model, mode, "n/a", f"{goal_model} not measured in {mode}")
            continue
        best, compared = None, 0
        for r in s["rows"].values():
            if r["mode"] != mode or r["baseline"]:
                continue
            b = baseline(s["rows"], mode, r["kernels"])
            if not b or None in (r["bpb"], b["bpb"], r["above"], b["above"]) or b["above"] <= 0:
                continue
            compared += 1
            if r["bpb"] > 1.01 * b["bpb"]:
                continue
            cut = 1 - r["above"] / b["above"]
            if best is None or cut > best[0]:
                best = (cut, r, b)
        if best is None:
            add("G3", goal_model, mode, "FAIL" if compared else "n/a",
                f"none of {compared} points within 1% bits/byte of top-2" if compared else
                "no point has a top-2 with J/token above idle (> 0) and bits/byte on its kernels")
            continue
        cut, r, b = best
        cuts = rep_cuts(r, b, s["idle_w"])
        by_rep = f" (per rep {100 * min(cuts):.1f}–{100 * max(cuts):.1f}%)" if len(cuts) > 1 else ""
        held = None if None in (r["bpb_report"], b["bpb_report"]) else rel(r["bpb_report"], b["bpb_report"])
        ok = cut >= need and (held is None or held <= 0.01)
        add("G3", goal_model, mode, "PASS" if ok else "FAIL",
            f"best within 1% bits/byte{' on the tuning split' if held is not None else ''}: {r['point']} "
            f"({r['kernels']}), {100 * cut:.1f}% less J/token above idle{by_rep} (goal ≥ {100 * need:.0f}%), bits/byte "
            f"{r['bpb']:.4f}{'*' if r['bpb_window'] else ''} vs {b['bpb']:.4f} ({pct(rel(r['bpb'], b['bpb']), 2)})" +
            ("" if held is None else f"; held out {r['bpb_report']:.4f} vs {b['bpb_report']:.4f} ({pct(held, 2)}, "
                                     f"must stay within 1%)"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl", nargs="+", help="measurement files of bench/energy_policies (measurements.jsonl)")
    ap.add_argument("--out", help="write the markdown here too")
    ap.add_argument("--json", help="write the goal results as JSON")
    ap.add_argument("--goal-model", default="medium", help="the model G3 is about (default medium)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="G1's noise tolerance (default 0.02)")
    a = ap.parse_args()
    summary = summarise(load(a.jsonl))
    lines = ["## Measured energy of routing policies", ""]
    for name in summary:
        lines += table(name, summary[name])
    res = goals(summary, a.tolerance, a.goal_model)
    lines += ["### Goals", "", "| goal | model | mode | status | detail |", "|---|---|---|---|---|"]
    lines += [f"| {r['goal']} | {r['model']} | {r['mode']} | {r['status']} | {r['detail']} |" for r in res]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"goals": res, "models": {n: {"idle_w": s["idle_w"], "card": s["card"], "rows": [
                {k: v for k, v in r.items() if k not in ("spec", "reps")} for r in s["rows"].values()]} for n, s in summary.items()}},
                f, indent=1)


if __name__ == "__main__":
    main()
