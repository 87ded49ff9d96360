#!/usr/bin/env bash
# Energy validation on a GPU machine (read only: never changes clocks or power limits). Runs, logging everything
# under OUT_DIR:
#   1. nvidia-smi -q (the full report, plus a one-line summary);
#   2. 5 s of idle power (wattmoe telemetry --sensor nvml);
#   3. wattmoe profile of a Mixtral-shaped layer (scripts/device/mixtral_layer.json, random bf16 weights made on the
#      GPU) with --fit-hardware --check-layer, twice (out1.json/check1.json, out2.json/check2.json);
#   4. the two profiles compared: per block, the relative difference of J per call at each token count and of the
#      fitted a and b (the issue asks for per-block costs within 5%);
#   5. a profile of models/kjv-small on cuda (shorter windows: it is small and has 40 blocks).
# Then a summary: counter vs integrated power on the longest window (within 5%?), the calibrated analytic model
# against the measured MoE layer (within 15%?), run 1 vs run 2 (within 5%?), and the time of each step.
#
# Usage: scripts/device/energy_validation.sh BIN_DIR OUT_DIR
#   BIN_DIR holds a CUDA build of wattmoe and the shared libraries it needs that the machine lacks (the script puts
#   BIN_DIR on LD_LIBRARY_PATH). Runs in about 5 minutes on an H100/H200 (the budget is 7). Needs python3 (stdlib).
set -uo pipefail
BIN=$(cd "${1:?usage: energy_validation.sh BIN_DIR OUT_DIR}" && pwd)
mkdir -p "${2:?usage: energy_validation.sh BIN_DIR OUT_DIR}"
OUT=$(cd "$2" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export LD_LIBRARY_PATH="$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
W="$BIN/wattmoe"
LOG="$OUT/validation.log"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
T_ALL=$(now)
TIMES=()
step() {  # step NAME command...: runs it, logs its output, records its time; a failure is reported, not fatal
  local name=$1; shift
  local t0 rc
  t0=$(now)
  say "=== $name: $*"
  "$@" >> "$LOG" 2>&1
  rc=$?
  local dt; dt=$(python3 -c "print(f'{$(now) - $t0:.1f}')")
  TIMES+=("$name ${dt}s rc=$rc")
  say "=== $name: ${dt} s, exit $rc"
  return $rc
}

[ -x "$W" ] || { say "no wattmoe in $BIN"; exit 2; }
ldd "$W" >> "$LOG" 2>&1

# 1. The GPU as the driver reports it.
step nvidia-smi bash -c "nvidia-smi -q > '$OUT/nvidia-smi.txt'"
nvidia-smi --query-gpu=name,driver_version,power.limit,power.draw,clocks.max.sm,temperature.gpu --format=csv 2>&1 |
  tee -a "$LOG"

# 2. Idle power.
step idle "$W" telemetry --sensor nvml --interval-ms 100 --duration 5 --record "$OUT/idle.jsonl"
python3 - "$OUT/idle.jsonl" <<'PY' 2>&1 | tee -a "$LOG"
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
p = [x["power_w"] for x in s if x.get("power_w") is not None]
e = [(x["time_s"], x["energy_j"]) for x in s if x.get("energy_j") is not None]
msg = f"idle: {len(s)} samples, instant power mean {sum(p)/len(p):.1f} W" if p else "idle: no power samples"
if len(e) > 1 and e[-1][0] > e[0][0]:
    msg += f", counter {(e[-1][1] - e[0][1]) / (e[-1][0] - e[0][0]):.1f} W"
print(msg)
PY

# 3. The Mixtral-shaped layer, twice.
CFG="$SRC/scripts/device/mixtral_layer.json"
for i in 1 2; do
  step "profile$i" bash -c "'$W' profile --device cuda --random-init 1 --config '$CFG' --fit-hardware \
    --check-layer '$OUT/check$i.json' --out '$OUT/out$i.json' > '$OUT/profile$i.stdout' 2> '$OUT/profile$i.stderr'"
  cat "$OUT/profile$i.stdout" >> "$LOG"
  tail -n 3 "$OUT/profile$i.stderr" >> "$LOG"
done

# 4. Run 1 against run 2.
python3 - "$OUT/out1.json" "$OUT/out2.json" > "$OUT/compare.txt" 2>&1 <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def blocks(t):
    out = {}
    for layer in t["layers"]:
        for e in layer["experts"]:
            out[e["name"]] = e
    for blk in t.get("blocks", []):
        out[blk["name"]] = blk
    return out
A, B = blocks(a), blocks(b)
rel = lambda x, y: abs(x - y) / max(abs(x), abs(y), 1e-300)
worst_j, worst_ab = (0, ""), (0, "")
print(f"{'block':22} {'T':>6} {'J run1':>12} {'J run2':>12} {'diff':>8}")
for name in A:
    if name not in B:
        print(f"{name}: missing in run 2"); continue
    for m1, m2 in zip(A[name]["measurements"], B[name]["measurements"]):
        d = rel(m1["j"], m2["j"])
        worst_j = max(worst_j, (d, f"{name} T={m1['tokens']}"))
        print(f"{name:22} {m1['tokens']:6d} {m1['j']:12.5g} {m2['j']:12.5g} {100*d:7.2f}%")
    for k in ("a_j", "b_j"):
        d = rel(A[name][k], B[name][k])
        worst_ab = max(worst_ab, (d, f"{name} {k}"))
    print(f"{name:22}  a_j {A[name]['a_j']:.5g} / {B[name]['a_j']:.5g}   b_j {A[name]['b_j']:.5g} / {B[name]['b_j']:.5g}")
print(f"max J-per-call difference between the runs: {100*worst_j[0]:.2f}% ({worst_j[1]}) -> "
      f"{'within' if worst_j[0] <= 0.05 else 'NOT within'} 5%")
print(f"max fitted a/b difference: {100*worst_ab[0]:.2f}% ({worst_ab[1]})")
PY
tail -n 2 "$OUT/compare.txt" | tee -a "$LOG"

# 5. The shipped model on the GPU.
step kjv-small bash -c "'$W' profile --device cuda --model '$SRC/models/kjv-small' --tokens-per-call 1,8,64 \
  --min-window-s 0.2 --repeats 2 --settle-s 0.1 --idle-s 1 --out '$OUT/kjv-small.json' > '$OUT/kjv-small.stdout' 2> '$OUT/kjv-small.stderr'"
cat "$OUT/kjv-small.stdout" >> "$LOG"

# Summary.
say "=== summary"
python3 - "$OUT" <<'PY' 2>&1 | tee -a "$LOG"
import json, os, sys
out = sys.argv[1]
for i in (1, 2):
    p = os.path.join(out, f"check{i}.json")
    if not os.path.exists(p):
        print(f"run {i}: no check-layer output"); continue
    c = json.load(open(p))
    cv = c.get("counter_vs_integrated") or {}
    rd = cv.get("rel_diff")
    print(f"run {i}: longest window {cv.get('seconds', 0):.2f} s, counter {cv.get('joules_counter')} J vs integrated "
          f"{cv.get('joules_integrated')} J: " + (f"{100*rd:+.2f}% ({'within' if abs(rd) <= 0.05 else 'NOT within'} 5%)"
                                                  if rd is not None else "n/a"))
    errs = ", ".join(f"T={p['tokens']} {100*p['rel_err']:+.1f}%" for p in c["points"])
    print(f"run {i}: calibrated analytic vs measured MoE layer: {errs}; max {100*c['max_abs_rel_err']:.1f}% "
          f"({'within' if c['within_15pct'] else 'NOT within'} 15%)")
    hw = c["hardware"]
    print(f"run {i}: fitted static {hw['static_w']:.1f} W, {hw['pj_per_flop']:.3g} pJ/FLOP, {hw['pj_per_byte']:.3g} pJ/B, "
          f"peak {hw['peak_flops']:.3g} FLOP/s, {hw['bandwidth_bytes_per_s']:.3g} B/s, launch {hw['launch_s']:.3g} s")
PY
tail -n 2 "$OUT/compare.txt" | tee -a "$LOG"
for t in "${TIMES[@]}"; do say "time: $t"; done
say "total: $(python3 -c "print(f'{$(now) - $T_ALL:.1f}')") s"
