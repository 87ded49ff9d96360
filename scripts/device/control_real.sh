#!/usr/bin/env bash
# The power-budget controller on a real GPU (read only: never changes clocks or power limits), two ways:
#   --plant cuda (default): the shipped model reads kjv val on the CPU; each window's routed work runs on the GPU as
#     Mixtral-shaped experts (one bf16 weight set per layer and expert) paced to a 1 s step;
#   --plant model: the model itself (--model DIR, bf16, fused kernels) reads kjv val on the GPU, and each step runs it
#     on --sim-streams copies of the window just scored (the streams it stands for), paced to the step;
# and the controller reads the power the NVML energy counter measured. Under OUT_DIR:
#   1. nvidia-smi -L;
#   2. calibration: a few unbudgeted steps at 64 streams; the streams are then scaled so the unconstrained work
#      fills about DUTY (default 0.6) of the period (power between idle and the board limit, no overrun);
#   3. free.jsonl/free.json: NOBUDGET_WINDOWS steps with no budget (the unconstrained draw P0; idle power measured
#      for 2 s before any work);
#   4. step.jsonl/step.json: a power budget T1 = L + f1·(P0 − L), stepped down at a third to T2 = L + f2·(P0 − L)
#      and up again at two thirds to T3 = L + f3·(P0 − L). --span idle (default): L is the idle power, f 0.9, 0.7,
#      0.85 (on an H200 the skip knob alone brought the synthetic plant's power from P0 down to about
#      idle + 0.63·(P0 − idle)). --span routing: L is the power of the same steps routed top-1 (floor.jsonl/
#      floor.json, NOBUDGET_WINDOWS steps at --k-max 1), f 0.8, 0.3, 0.6, so every target lies within what routing
#      can reach — for a real model, whose attention and dense work do not shrink with the experts, the idle span
#      puts the lower targets out of routing's reach (medium on an H100: P0 312 W, top-1 271 W, idle 124 W);
#   5. summary.json and two tables, per window and per block of 4 windows (the NVML counter scatters ±12% per
#      0.25 s window on an H200 for identical steps, ±0.6% per 1 s window: see the free run's line): per segment the mean
#      and worst relative error in its second half (steady state), the overshoot past the new target in the
#      direction of the change, the windows (blocks) until power stays within ±5% (settling; as
#      scripts/experiments/run_experiments.py's "control" section), and a limit-cycle check on the knob u (see
#      limit_cycle below), plus the windows where the thermal guard held a floor on u.
# Usage: scripts/device/control_real.sh [--bin WATTMOE] [--data FILE] [--out DIR] [--windows N] [--duty D]
#                                       [--period S] [--free-windows N] [--no-thermal-guard] [--analyse DIR]
#                                       [--plant cuda|model] [--model DIR] [--span idle|routing]
#   --period: seconds per step (default 1: one window is one reading the counter resolves to ~1%; at 0.25 s the
#   readings of identical steps scatter ±12%).
#   --no-thermal-guard: the budget run without the thermal guard (on an H200 the guard once fired at the start, from
#   the temperature's sub-second swing, and held u up for ~80 windows). --analyse DIR: only the analysis, on DIR.
#   --bin: a CUDA build of wattmoe (its shared libraries on LD_LIBRARY_PATH); --data: kjv val text (default
#   data/kjv.val.txt); --out: default $OUT, else out/control_real; --windows: steps of the budget run (default 120,
#   120 s). Needs python3 (stdlib). About 3.5 minutes.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$SRC/build/wattmoe" DATA="$SRC/data/kjv.val.txt" DIR=${OUT:-$SRC/out/control_real} WINDOWS=120 DUTY=0.6
NOBUDGET_WINDOWS=30 PERIOD=1 ANALYSE="" GUARD=() PLANT=cuda MODEL="$SRC/models/kjv-small" SPAN=idle
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) DIR=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    --duty) DUTY=$2; shift 2 ;;
    --period) PERIOD=$2; shift 2 ;;
    --free-windows) NOBUDGET_WINDOWS=$2; shift 2 ;;
    --no-thermal-guard) GUARD=(--no-thermal-guard); shift ;;
    --analyse) ANALYSE=$2; shift 2 ;;
    --plant) PLANT=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --span) SPAN=$2; shift 2 ;;
    *) echo "control_real.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $SPAN in idle|routing) ;; *) echo "control_real.sh: --span is idle or routing, not '$SPAN'" >&2; exit 2 ;; esac
[ -n "$ANALYSE" ] && DIR=$ANALYSE
mkdir -p "$DIR"
LOG="$DIR/control_real.log"
[ -z "$ANALYSE" ] && : > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
analyse() {
python3 - "$1" <<'PY' | tee -a "$1/control_real.log"
import json, math, statistics, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/step.jsonl")]
free = [json.loads(l) for l in open(d + "/free.jsonl")]
S, F = json.load(open(d + "/step.json")), json.load(open(d + "/free.json"))
# Segments: runs of windows with one target (the schedule's steps).
cuts = [0] + [i for i in range(1, len(rows)) if rows[i]["control"]["target"] != rows[i - 1]["control"]["target"]]
targets = [rows[i]["control"]["target"] for i in cuts]
BAND, BLOCK = 0.05, 4  # blocks of BLOCK windows: a steadier reading when windows are short (see the free run's noise)


def blocks(rs):
    """Power over consecutive BLOCK-window spans: their energy over their time (the last partial span dropped)."""
    return [sum(r["measured_step_j"] for r in rs[i:i + BLOCK]) / sum(r["measured_step_s"] for r in rs[i:i + BLOCK])
            for i in range(0, len(rs) - BLOCK + 1, BLOCK)]


def settle_stats(p, target, before):
    """As run_experiments.py: overshoot past the target in the direction of the change (relative), steps until
    power stays within ±BAND, and the second half's mean and worst relative error."""
    sign = 1.0 if target > before else -1.0
    over = max(0.0, max(sign * (x - target) / target for x in p))
    settle = next((i for i in range(len(p)) if all(abs(x - target) / target <= BAND for x in p[i:])), None)
    tail = p[len(p) // 2:]
    ss = sum(tail) / len(tail)
    return over, settle, (ss - target) / target, max(abs(x - target) / target for x in tail)


def autocorr(v):
    """Largest autocorrelation of v (mean removed) at lags 2..20 and its lag."""
    m = sum(v) / len(v)
    c = [x - m for x in v]
    var = sum(x * x for x in c) / len(c)
    if var == 0:
        return 0.0, 0
    return max((sum(c[i] * c[i + L] for i in range(len(c) - L)) / (len(c) * var), L) for L in range(2, 21))


def limit_cycle(u):
    """A limit cycle is the knob swinging periodically: in the second half of a segment u's autocorrelation peaks
    ≥ 0.5 at some lag 2..20 and its peak-to-peak exceeds 0.2 (a fifth of its range). Power alone cannot say:
    the counter's per-window noise is itself periodic (its updates alias against the step)."""
    ac, lag = autocorr(u)
    pp = max(u) - min(u)
    return {"u_autocorr": ac, "u_lag": lag, "u_peak_to_peak": pp, "u_sd": statistics.pstdev(u),
            "limit_cycle": bool(ac >= 0.5 and pp > 0.2)}


fr = free[8:-1]
fb = blocks(fr)
out = {"card": S["plant"]["gpu"], "sensor": S["plant"]["sensor"], "idle_w": S["plant"]["idle_w"],
       "idle_w_free_run": F["plant"]["idle_w"], "streams": S["plant"]["streams"],
       "step_period_s": S["plant"]["step_period_s"], "targets_w": targets, "step_windows": cuts[1:],
       "plant": S["plant"]["label"],
       "unconstrained_w": statistics.mean(r["measured_power_w"] for r in fr),
       "unconstrained_busy_s": statistics.mean(r["measured_busy_s"] for r in fr),
       "unconstrained_sd_w": statistics.stdev(r["measured_power_w"] for r in fr),
       "unconstrained_block_sd_w": statistics.stdev(fb) if len(fb) > 1 else float("nan"),
       "unconstrained_busy_sd_s": statistics.stdev(r["measured_busy_s"] for r in fr),
       "window_s": statistics.mean(r["measured_step_s"] for r in rows),
       "integrated_vs_counter": statistics.mean(r["measured_integrated_j"] / r["measured_integrated_s"] /
                                                r["measured_power_w"] for r in fr) if "measured_integrated_j" in fr[0]
                                else float("nan"),
       "unconstrained_bits_per_byte": F["bits_per_byte"], "unconstrained_experts_per_token": F["experts_per_token"],
       "budget_bits_per_byte": S["bits_per_byte"], "budget_experts_per_token": S["experts_per_token"],
       "overrun_windows": S["plant"]["overrun_windows"], "max_temp_c": S["plant"]["max_temp_c"],
       "throttled_windows": S["plant"]["throttled_windows"], "segments": []}
thermal = [r["window"] for r in rows if r["control"].get("thermal_active") or r["control"]["floor"] > 0]
out["thermal_floor_windows"] = [thermal[0], thermal[-1], len(thermal)] if thermal else None
out["energy_methods"] = sorted({r["measured_method"] for r in rows})
out["clock_event_reasons_seen"] = sorted({x for r in rows for x in r["measured_reasons_seen"]})
print(f"card {out['card']}; idle {out['idle_w']:.1f} W; unconstrained {out['unconstrained_w']:.1f} W, per window "
      f"± {out['unconstrained_sd_w']:.1f} W (1 sd), per {BLOCK}-window block ± {out['unconstrained_block_sd_w']:.1f} W, "
      f"for steps whose GPU time varies ± {1000 * out['unconstrained_busy_sd_s']:.1f} ms of "
      f"{1000 * out['unconstrained_busy_s']:.0f} ms (period {out['step_period_s']} s, windows "
      f"{out['window_s']:.3f} s, {out['streams']:.0f} streams); integrated instant power / counter "
      f"{out['integrated_vs_counter']:.3f}")
ends = cuts[1:] + [len(rows) - 1]
segs = [(s, e, t, rows[0]["measured_power_w"] if i == 0 else targets[i - 1])
        for i, (s, e, t) in enumerate(zip(cuts, ends, targets))]
for unit in ("window", "block"):
    print(f"\nper {unit}" + (f" ({BLOCK} windows, ~{BLOCK * out['window_s']:.1f} s)" if unit == "block" else ""))
    print(f"| windows | target | mean error (2nd half) | worst |error| (2nd half) | overshoot | {unit}s to ±5% | "
          "limit cycle (u) |")
    print("|---|---|---|---|---|---|---|")
    for s, e, t, before in segs:
        p = [r["measured_power_w"] for r in rows[s:e]] if unit == "window" else blocks(rows[s:e])
        over, settle, ss, worst = settle_stats(p, t, before)
        lc = limit_cycle([r["control"]["u"] for r in rows[s + (e - s) // 2:e]])
        out["segments"].append({"unit": unit, "windows": [s, e], "target_w": t, "from_w": before, "mean_error": ss,
                                "worst_abs_error": worst, "overshoot": over, "settle": settle, **lc})
        print(f"| {s}–{e} | {t:.0f} W | {100 * ss:+.2f}% | {100 * worst:.2f}% | {100 * over:.1f}% | "
              f"{settle if settle is not None else 'never'} | {'yes' if lc['limit_cycle'] else 'no'} "
              f"(u sd {lc['u_sd']:.3f}, p-p {lc['u_peak_to_peak']:.2f}, autocorr {lc['u_autocorr']:.2f}@{lc['u_lag']}) |")
print(f"\nbits/byte {S['bits_per_byte']:.4f} (unbudgeted {F['bits_per_byte']:.4f}); experts/token "
      f"{S['experts_per_token']:.3f} (unbudgeted {F['experts_per_token']:.3f}); overrun windows "
      f"{out['overrun_windows']}; max temp {out['max_temp_c']:.0f} °C; thermal floor windows (first, last, count) "
      f"{out['thermal_floor_windows']}; energy {out['energy_methods']}; clock-event reasons "
      f"{out['clock_event_reasons_seen']}")
json.dump(out, open(d + "/summary.json", "w"), indent=2)
PY
}
if [ -n "$ANALYSE" ]; then analyse "$ANALYSE"; exit $?; fi
COMMON=(run --plant "$PLANT" --model "$MODEL" --data "$DATA" --expert-shape 4096x14336 --step-period-s "$PERIOD")
[ "$PLANT" = model ] && COMMON+=(--device cuda --precision bf16)

nvidia-smi -L 2>&1 | tee -a "$LOG"
nvidia-smi --query-gpu=name,power.limit,temperature.gpu,clocks.sm --format=csv 2>&1 | tee -a "$LOG"

# 2. Calibration.
say "== calibration: 16 windows at 64 streams"
"$BIN" "${COMMON[@]}" --sim-streams 64 --max-tokens $((16 * 128)) --idle-s 1 --log "$DIR/cal.jsonl" \
  --summary "$DIR/cal.json" 2>>"$LOG" || { say "calibration run failed"; exit 1; }
STREAMS=$(python3 - "$DIR" "$DUTY" "$PERIOD" <<'PY'
import json, sys
d, duty, period = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = [json.loads(l) for l in open(d + "/cal.jsonl")][4:]
busy = sum(r["measured_busy_s"] for r in rows) / len(rows)
print(max(16, min(16384, round(64 * duty * period / busy))))
PY
) || { say "calibration analysis failed"; exit 1; }
say "calibration: streams $STREAMS for ~$DUTY of a $PERIOD s period"

# 3. No budget.
say "== no budget: $NOBUDGET_WINDOWS windows"
"$BIN" "${COMMON[@]}" --sim-streams "$STREAMS" --max-tokens $((NOBUDGET_WINDOWS * 128)) --log "$DIR/free.jsonl" \
  --summary "$DIR/free.json" 2>>"$LOG" || { say "no-budget run failed"; exit 1; }
if [ "$SPAN" = routing ]; then
  say "== top-1 (routing's floor): $NOBUDGET_WINDOWS windows"
  "$BIN" "${COMMON[@]}" --sim-streams "$STREAMS" --max-tokens $((NOBUDGET_WINDOWS * 128)) --k-max 1 \
    --log "$DIR/floor.jsonl" --summary "$DIR/floor.json" 2>>"$LOG" || { say "top-1 run failed"; exit 1; }
fi
read -r T1 T2 T3 IDLE P0 LOW < <(python3 - "$DIR" "$SPAN" <<'PY'
import json, sys
d, span = sys.argv[1], sys.argv[2]
s = json.load(open(d + "/free.json"))["plant"]
def mean_power(name):  # steady windows: the first 8 warm up, the last may be partial
    rows = [json.loads(l) for l in open(f"{d}/{name}.jsonl")][8:-1]
    return sum(r["measured_power_w"] for r in rows) / len(rows)
p0, idle = mean_power("free"), s["idle_w"]
low, fracs = (mean_power("floor"), (0.8, 0.3, 0.6)) if span == "routing" else (idle, (0.9, 0.7, 0.85))
print(*(round(low + f * (p0 - low)) for f in fracs), round(idle, 1), round(p0, 1), round(low, 1))
PY
) || { say "no-budget analysis failed"; exit 1; }
W1=$((WINDOWS / 3)) W2=$((2 * WINDOWS / 3))
say "idle ${IDLE} W, unconstrained ${P0} W, span from ${LOW} W ($SPAN) -> targets ${T1} W, ${T2} W from window $W1, ${T3} W from window $W2"

# 4. Budget stepped down at a third and up at two thirds.
say "== budget ${T1} W -> ${T2} W -> ${T3} W: $WINDOWS windows"
"$BIN" "${COMMON[@]}" --sim-streams "$STREAMS" --max-tokens $((WINDOWS * 128)) --power-budget-w "$T1" \
  --budget-schedule "$W1:$T2,$W2:$T3" "${GUARD[@]}" --log "$DIR/step.jsonl" --summary "$DIR/step.json" 2>>"$LOG" ||
  { say "budget run failed"; exit 1; }

# 5. Analysis (also on its own: --analyse DIR reads DIR's free/step logs).
analyse "$DIR"
