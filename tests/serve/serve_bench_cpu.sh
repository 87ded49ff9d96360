#!/usr/bin/env bash
# bench/serve_bench.py's logic on the CPU (the GPU benchmark of docs/serve.md, scaled down; energy simulated): two
# policies at concurrency 1 and 4, points at 1 and 2 streams on one server with online TTT (its share of the time
# capped at 0.5), then a budget step under load (deadband 0.01, recorded). Checks that it exits 0, that every point has
# tokens/s, J/token and experts/token, that the skip policy routes fewer experts than top-2, that the requests'
# energy matches the simulated counter within 20% (the simulated counter ticks like NVML's, so each reading lags by
# up to a tick: several percent of these 1.5 s points on a loaded machine; the GPU benchmark runs longer and asks
# 5%), and that the budget phase wrote its windows and two segments with verdicts (whether a budget holds on the
# CPU's noisy wall-time plant is not judged).
# Usage: bash serve_bench_cpu.sh <wattmoe> <source-dir> [unused]
W=${1:?usage: serve_bench_cpu.sh <wattmoe> <source-dir>}
SRC=${2:?usage: serve_bench_cpu.sh <wattmoe> <source-dir>}
. "$(dirname "$0")/lib.sh"
python3 "$SRC/bench/serve_bench.py" --bin "$W" --out "$TMP/bench" --device cpu --concurrency 1,4 --duration 1.5 \
  --max-tokens 8 --budget-concurrency 4 --ttt-concurrency 1,2 --control-deadband 0.01 --ladder-dwell 3 \
  --ttt-flags="--ttt --ttt-groups router,norms,lora --lora-rank 4 --ttt-max-share 0.5" --window-s 0.5 \
  --free-windows 4 --step-windows 8 --energy-tolerance 0.2 \
  --server-flag=--min-free-host-mb=0 > "$TMP/bench.out" 2>&1 || fail "serve_bench.py exited non-zero: $(tail -5 "$TMP/bench.out")"
cat "$TMP/bench.out"
python3 - "$TMP/bench" <<'PY' || fail "serve_bench.py's records"
import json, sys
d = sys.argv[1]
s = json.load(open(f"{d}/summary.json"))
recs = [json.loads(l) for l in open(f"{d}/serve_bench.jsonl")]
assert s["source"] == "simulated" and s["all_requests_answered"], s
pts = {(p["policy"], p["concurrency"]): p for p in s["points"]}
assert sorted(pts) == [("skip beta=0.5", 1), ("skip beta=0.5", 4), ("topk k_max=2", 1), ("topk k_max=2", 4),
                      ("topk k_max=2 +ttt", 1), ("topk k_max=2 +ttt", 2)], pts
for p in pts.values():
    assert p["tokens_per_s"] > 0 and p["j_per_token"] > 0 and p["ok"] == p["requests"] > 0 and not p["errors"], p
    assert p["energy_check"]["within_tolerance"], p["energy_check"]
for c in (1, 4):
    assert abs(pts[("topk k_max=2", c)]["experts_per_token"] - 2) < 1e-9, pts[("topk k_max=2", c)]
    assert pts[("skip beta=0.5", c)]["experts_per_token"] < 1.9, pts[("skip beta=0.5", c)]
for c in (1, 2):  # the adapter ran on each point's answered texts, inside the metered steps
    ttt = pts[("topk k_max=2 +ttt", c)]["ttt"]
    assert ttt["windows"] > 0 and ttt["adapted"] > 0 and ttt["steps"] > 0 and ttt["adaptation_s"] > 0, ttt
    assert 0 < ttt["adaptation_share_of_step_time"] < 1, ttt
b = s["budget"]
assert len(b["segments"]) == 2 and all(isinstance(x["held"], bool) for x in b["segments"]), b
assert b["control_deadband"] == 0.01 and b["ladder_dwell"] == 3, b
assert b["load"]["ok"] > 0 and not b["load"]["errors"] and b["load"]["lost"] == 0 and b["server_exit"] == 0, b
wins = [r for r in recs if r["kind"] == "window"]
assert all(w["ki"] is None for w in wins[:4]) and all(w["ki"] > 0 for w in wins[4:]), wins  # gains once a budget is on
assert all(w["expert_tier_bytes"] == 2 for w in wins), wins  # bf16 experts throughout: no --ladder-tier here
assert sum(r["kind"] == "window" for r in recs) == 4 + 2 * 8 and sum(r["kind"] == "point" for r in recs) == 6
PY
finish
