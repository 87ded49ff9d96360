#!/usr/bin/env bash
# The measured energy of routing policies on a GPU, whole suite in one command: bench/energy_policies (NVML energy
# counter, idle measured in each run, points interleaved, medians of 3 reps) on up to three models, then
# bench/energy_table.py's markdown table and goal checks. Read only on the GPU: never changes clocks or power limits.
#
#   model      source                                   modes                            points                    budget
#   kjv-small  models/kjv-small (shipped)               prefill, decode8                 SMALL_POINTS below         95 s
#   medium     --medium DIR (scripts/device/            prefill, decode8, decode64       MEDIUM_POINTS             135 s
#              train_medium.sh's --out; skipped, and
#              said so, when absent)
#   mixtral    random weights of scripts/device/        prefill (16 x 128), decode1,     MIXTRAL_POINTS            125 s
#              mixtral_random.json (4 Mixtral layers,   decode8, decode64
#              H 4096, I 14336, E 8, k 2: ~70 GB on the
#              device; speed and energy only)
# About 6 minutes in all on an H100 (--budget-s scales the per-model budgets; each run skips what would not fit and
# says so). Prefill is 64 x 128 tokens a forward (16 x 128 for the Mixtral shape, whose runner holds ~70 GB of
# weights and gradient buffers: larger batches would not fit an 80 GB card beside them), decode 1/8/64 streams with
# a 128-position cache; windows of --window-s (default 1) seconds, --reps 3, 4 s of idle at the start and the end.
#
# Under $OUT (or --out), at most 6 small files:
#   <model>.jsonl            one record per measurement of that model (kind idle | calibration | quality | window |
#                            skipped; bench/energy_policies.cpp's header)
#   summary.json             {"card", "models": {model: energy_policies' summary.json}, "runs": [exit status, seconds],
#                            "goals": [...]}
#   table.md                 bench/energy_table.py's table and goals
#   energy_policies.log      everything printed
#
# Usage: scripts/device/energy_policies.sh --bin-dir DIR [--data FILE] [--report-data FILE] [--medium DIR]
#          [--models LIST] [--window-s S] [--reps N] [--budget-s S] [--moe-kernels auto|fused|host] [--out DIR]
#          [-- EXTRA...]
#   --bin-dir: holds energy_policies (a CUDA build) and the shared libraries the machine lacks (put first on
#              LD_LIBRARY_PATH). --data: the eval text and the tuning split of the knobs (default data/kjv.val.txt).
#              --report-data: the held-out text the trained models' bits/byte are reported on (default kjv.test.txt
#              beside --data; "" for none). --models: a comma-separated subset of kjv-small,medium,mixtral (default
#              all three). EXTRA goes to every energy_policies run.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR="" DATA="$SRC/data/kjv.val.txt" REPORT=unset MEDIUM="" MODELS="kjv-small,medium,mixtral"
WINDOW=1 REPS=3 BUDGET=355
KERNELS=auto DIR=${OUT:-$SRC/out/energy_policies} EXTRA=()
SMALL_POINTS="topk; topk k_max=1; skip beta=0.5/0.7; top_p p=0.7/0.9; mask r=2; cost lambda=1 reuse=2"
MEDIUM_POINTS="topk; topk k_max=1; skip beta=0.3/0.5/0.6/0.7/0.8; top_p p=0.7/0.9; cost lambda=1 reuse=2"
MIXTRAL_POINTS="topk; topk k_max=1; skip beta=0.5; top_p p=0.7"
die() { echo "energy_policies.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) BIN_DIR=${2:-}; shift 2 ;;
    --data) DATA=${2:-}; shift 2 ;;
    --report-data) REPORT=${2:-}; shift 2 ;;
    --medium) MEDIUM=${2:-}; shift 2 ;;
    --models) MODELS=${2:-}; shift 2 ;;
    --window-s) WINDOW=${2:-}; shift 2 ;;
    --reps) REPS=${2:-}; shift 2 ;;
    --budget-s) BUDGET=${2:-}; shift 2 ;;
    --moe-kernels) KERNELS=${2:-}; shift 2 ;;
    --out) DIR=${2:-}; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ -n "$BIN_DIR" ] && [ -x "$BIN_DIR/energy_policies" ] || die "--bin-dir must hold a CUDA build of energy_policies"
[ -f "$DATA" ] || die "--data $DATA: no such file (make it here with: wattmoe data build --out data, and carry it)"
[ "$REPORT" = unset ] && REPORT=$(dirname "$DATA")/kjv.test.txt
[ -z "$REPORT" ] || [ -f "$REPORT" ] || die "--report-data $REPORT: no such file"
HELD=()  # the trained models' held-out quality pass
[ -n "$REPORT" ] && HELD=(--report-data "$REPORT")
command -v python3 > /dev/null || die "python3 is needed (the table and the summary)"
BIN_DIR=$(cd "$BIN_DIR" && pwd)
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
export LD_LIBRARY_PATH="$BIN_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/energy_policies.XXXXXX")
LOG="$DIR/energy_policies.log"
: > "$LOG"
now() { date +%s%N; }
T0=$(now)
el() { local d=$(( $(now) - $1 )); echo "$((d / 1000000000)).$((d / 100000000 % 10))"; }  # seconds since $1
say() { echo "[energy_policies.sh $(el "$T0") s] $*" | tee -a "$LOG"; }
scaled() { python3 -c "print(max(30, round($1 * $BUDGET / 355)))"; }  # a model's budget under --budget-s

CARD=$(nvidia-smi --query-gpu=name,driver_version,power.limit,temperature.gpu --format=csv,noheader 2> /dev/null |
  head -1)
say "card: ${CARD:-unknown}; models $MODELS; window ${WINDOW} s, ${REPS} reps, moe kernels $KERNELS, budget ${BUDGET} s"
RUNS=()
run_model() {  # run_model NAME BUDGET ARGS...: one energy_policies run; its JSONL to $DIR/NAME.jsonl
  local name=$1 budget=$2 t rc
  shift 2
  t=$(now)
  say "== $name: energy_policies $* (budget ${budget} s)"
  timeout -k 10 $((budget + 45)) "$BIN_DIR/energy_policies" --name "$name" --data "$DATA" --out "$WORK/$name" \
    --window-s "$WINDOW" --reps "$REPS" --idle-s 4 --settle-s 1 --time-budget-s "$budget" --precision bf16 \
    --moe-kernels "$KERNELS" "$@" "${EXTRA[@]}" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  [ -f "$WORK/$name/measurements.jsonl" ] && cp "$WORK/$name/measurements.jsonl" "$DIR/$name.jsonl"
  RUNS+=("$name $rc $(el "$t")")
  say "== $name: exit $rc after $(el "$t") s"
}

GOAL_MODEL=kjv-small  # the goals' model: medium when it ran
for m in ${MODELS//,/ }; do
  case $m in
    kjv-small)
      run_model kjv-small "$(scaled 95)" --model "$SRC/models/kjv-small" --modes prefill,decode8 \
        --points "$SMALL_POINTS" "${HELD[@]}" ;;
    medium)
      if [ -n "$MEDIUM" ] && [ -f "$MEDIUM/config.json" ] && [ -f "$MEDIUM/model.safetensors" ]; then
        run_model medium "$(scaled 135)" --model "$MEDIUM" --modes prefill,decode8,decode64 --points "$MEDIUM_POINTS" \
          "${HELD[@]}"
        GOAL_MODEL=medium
      else
        say "== medium: skipped: no trained model (--medium DIR from scripts/device/train_medium.sh; got '${MEDIUM}')"
        RUNS+=("medium skipped 0")
      fi ;;
    mixtral)
      run_model mixtral "$(scaled 125)" --random-init 1 --config "$SRC/scripts/device/mixtral_random.json" \
        --batch 16 --modes prefill,decode1,decode8,decode64 --points "$MIXTRAL_POINTS" ;;
    *) say "unknown model '$m' (expected kjv-small, medium, mixtral): skipped" ;;
  esac
done

JSONLS=()
for f in "$DIR"/*.jsonl; do [ -f "$f" ] && JSONLS+=("$f"); done
if [ ${#JSONLS[@]} -gt 0 ]; then
  python3 "$SRC/bench/energy_table.py" "${JSONLS[@]}" --out "$DIR/table.md" --json "$WORK/goals.json" \
    --goal-model "$GOAL_MODEL" | tee -a "$LOG"
else
  say "no measurements: no table"
fi
python3 - "$DIR" "$WORK" "$CARD" "$(el "$T0")" "${RUNS[@]}" <<'PY' | tee -a "$LOG"
import json, os, sys
out, work, card, total, runs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:]
s = {"card": card, "total_s": total, "runs": [], "models": {}, "goals": None}
for r in runs:
    name, rc, secs = (r.split() + ["", ""])[:3]
    s["runs"].append({"model": name, "exit": rc, "seconds": float(secs) if secs else None})
    try:
        s["models"][name] = json.load(open(os.path.join(work, name, "summary.json")))
    except (OSError, ValueError):
        pass
try:
    s["goals"] = json.load(open(os.path.join(work, "goals.json")))["goals"]
except (OSError, ValueError, KeyError):
    pass
json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=1)
print("runs: " + "; ".join(f"{r['model']} exit {r['exit']} ({r['seconds']} s)" for r in s["runs"]))
PY
rm -rf "$WORK"
say "done in $(el "$T0") s: $DIR/{table.md,summary.json,*.jsonl,energy_policies.log}"
