#!/usr/bin/env bash
# Trains the `medium` preset (~107M parameters, src/train/presets.cpp) on kjv on the GPU and evaluates it, for the
# measured energy benchmark of routing policies (scripts/device/energy_policies.sh --medium DIR). Read only on the
# GPU: never changes clocks or power limits.
#
# Phases (one line each with elapsed seconds):
#   1. card    nvidia-smi -L
#   2. train   wattmoe train --device cuda --preset medium --out DIR (fp32; resumes DIR/checkpoint when present, so a
#              second call continues an interrupted run; --fresh starts over). At --time-limit seconds the trainer
#              gets SIGINT: it finishes its step, writes a checkpoint and stops (SIGKILL only 120 s later). The
#              preset's 3000 steps take ~4 minutes at ~110k tokens/s.
#   3. eval    wattmoe eval --device cuda --precision bf16 --model DIR on kjv val (the whole file; fused MoE kernels)
#   4. summary DIR/summary.json: card, steps done / planned, whether the time limit stopped it, train seconds and
#              tokens/s, the last train loss, the validation curve, the bf16 eval; copied with DIR/metrics.jsonl and
#              the train log to $OUT when OUT is set (summary.json, metrics.jsonl, train.log).
# The model (DIR/config.json + model.safetensors, ~430 MB, and DIR/checkpoint/ with the optimizer, ~1.3 GB) stays
# in DIR on this machine: DIR must not be inside $OUT.
#
# Usage: scripts/device/train_medium.sh --bin WATTMOE --data DIR --out DIR [--time-limit S] [--fresh]
#                                       [--train FILE --val FILE [--tokenizer FILE]]
#                                       [-- extra `wattmoe train` flags, e.g. --steps 200]
#   --train/--val: other training and validation text than DIR/kjv.{train,val}.txt (e.g. the mix corpus's
#          prose.{train,val}.txt), --tokenizer a tokenizer.json for them (default: bytes).
#   --bin: a CUDA build of wattmoe; the directory holding it is put first on LD_LIBRARY_PATH (carry the shared
#          libraries the machine lacks beside it: OpenBLAS, gfortran, quadmath, fmt).
#   --data: holds kjv.train.txt and kjv.val.txt (`wattmoe data build --out DIR`).
#   --time-limit: seconds for the training phase (default 300). Exit status: 0 when a model was trained and
#          evaluated (also when the time limit stopped it), 1 otherwise, 2 for bad arguments.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="" DATA="" DIR="" LIMIT=300 FRESH=0 EXTRA=() TRAIN_FILE="" VAL_FILE="" TOKENIZER=bytes
die() { echo "train_medium.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=${2:-}; shift 2 ;;
    --data) DATA=${2:-}; shift 2 ;;
    --out) DIR=${2:-}; shift 2 ;;
    --time-limit) LIMIT=${2:-}; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --train) TRAIN_FILE=${2:-}; shift 2 ;;
    --val) VAL_FILE=${2:-}; shift 2 ;;
    --tokenizer) TOKENIZER=${2:-}; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ -n "$BIN" ] && [ -x "$BIN" ] || die "--bin must name a CUDA build of wattmoe (got '${BIN}')"
[ -n "$DATA" ] && [ -d "$DATA" ] || die "--data must name a directory (wattmoe data build --out DIR)"
TRAIN_FILE=${TRAIN_FILE:-$DATA/kjv.train.txt} VAL_FILE=${VAL_FILE:-$DATA/kjv.val.txt}
[ -f "$TRAIN_FILE" ] && [ -f "$VAL_FILE" ] ||
  die "no training or validation text: $TRAIN_FILE, $VAL_FILE (make kjv's with: wattmoe data build --out DIR)"
[ "$TOKENIZER" = bytes ] || [ -f "$TOKENIZER" ] || die "--tokenizer $TOKENIZER: no such file"
[ -n "$DIR" ] || die "--out DIR is required (where the model stays; ~430 MB)"
[[ $LIMIT =~ ^[0-9]+$ ]] && [ "$LIMIT" -gt 0 ] || die "--time-limit must be a positive number of seconds"
command -v python3 > /dev/null || die "python3 is needed for the summary"
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
DATA=$(cd "$DATA" && pwd)
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && OUTABS=$(cd "$OUT" && pwd)
  case "$DIR/" in "$OUTABS"/*) die "--out $DIR is inside \$OUT ($OUTABS): the model (~430 MB) cannot travel back" ;; esac
fi
export LD_LIBRARY_PATH="$(dirname "$BIN")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

now() { date +%s%N; }
T0=$(now)
el() { local d=$(( $(now) - $1 )); echo "$((d / 1000000000)).$((d / 100000000 % 10))"; }  # seconds since $1
phase() { echo "[train_medium $(el "$T0") s] $*"; }

# 1. The card.
CARD=$(nvidia-smi -L 2> /dev/null | head -1)
phase "card: ${CARD:-unknown}"

# 2. Training, interrupted cleanly at the time limit.
[ $FRESH -eq 1 ] && rm -rf "$DIR/checkpoint" "$DIR/checkpoint.tmp" "$DIR/checkpoint.old" "$DIR/metrics.jsonl"
RESUME=()
[ $FRESH -eq 1 ] && RESUME=(--no-resume)
phase "train: wattmoe train --device cuda --preset medium --out $DIR (time limit ${LIMIT} s) ${EXTRA[*]}"
T=$(now)
timeout -s INT -k 120 "$LIMIT" "$BIN" train --device cuda --preset medium --train "$TRAIN_FILE" \
  --val "$VAL_FILE" --tokenizer "$TOKENIZER" --out "$DIR" "${RESUME[@]}" "${EXTRA[@]}" \
  > "$DIR/train.json" 2> >(tee "$DIR/train.log" >&2)
RC=$?
TRAIN_S=$(el "$T")
STOPPED=false
case $RC in
  0) phase "train: done in ${TRAIN_S} s" ;;
  124) STOPPED=true; phase "train: stopped at the time limit (${LIMIT} s; checkpoint written) after ${TRAIN_S} s" ;;
  137) STOPPED=true; phase "train: killed 120 s after the time limit (${TRAIN_S} s): using the last checkpoint" ;;
  *) phase "train: FAILED (exit $RC) after ${TRAIN_S} s; last lines of $DIR/train.log:"; tail -5 "$DIR/train.log" ;;
esac
sleep 1  # the log tee finishes

# 3. Evaluation on the GPU in bf16 (fused MoE kernels where they apply).
EVAL_RC=1
if [ -f "$DIR/config.json" ] && [ -f "$DIR/model.safetensors" ]; then
  T=$(now)
  "$BIN" eval --device cuda --precision bf16 --model "$DIR" --data "$VAL_FILE" --json > "$DIR/eval.json" \
    2> "$DIR/eval.log"
  EVAL_RC=$?
  if [ $EVAL_RC -eq 0 ]; then
    phase "eval: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"{d['bits_per_byte']:.4f} \
bits/byte on {d['tokens']} tokens, {d['tokens_per_s']:.0f} tokens/s, {d['precision']} {d['moe_kernels']}\")" \
      "$DIR/eval.json") ($(el "$T") s)"
  else
    phase "eval: FAILED (exit $EVAL_RC): $(tail -1 "$DIR/eval.log")"
  fi
else
  phase "eval: skipped, no model in $DIR"
fi

# 4. Summary.
python3 - "$DIR" "$CARD" "$RC" "$STOPPED" "$TRAIN_S" "$LIMIT" "$EVAL_RC" <<'PY'
import json, os, sys
d, card, rc, stopped, train_s, limit, eval_rc = sys.argv[1:8]
def load(name):
    try:
        txt = open(os.path.join(d, name)).read().strip()
        return json.loads(txt.splitlines()[-1]) if txt else None
    except (OSError, ValueError, IndexError):
        return None
metrics = []
try:
    metrics = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl")) if l.strip()]
except (OSError, ValueError):
    pass
steps = [m for m in metrics if "loss" in m]
vals = [{"step": m["step"], "val_bpb": m["val_bpb"], "val_tokens": m.get("val_tokens")} for m in metrics if "val_bpb" in m]
train = load("train.json")
ev = None
try:
    ev = json.load(open(os.path.join(d, "eval.json")))
except (OSError, ValueError):
    pass
state = None
try:
    state = json.load(open(os.path.join(d, "checkpoint", "trainer_state.json")))
except (OSError, ValueError):
    pass
size = sum(os.path.getsize(os.path.join(d, f)) for f in ("model.safetensors", "config.json") if os.path.exists(os.path.join(d, f)))
s = {"card": card, "preset": "medium", "model_dir": d, "model_bytes": size,
     "train_exit": int(rc), "stopped_by_time_limit": stopped == "true", "time_limit_s": int(limit),
     "train_wall_s": float(train_s), "train": train, "checkpoint_state": state,
     "last_logged_step": steps[-1]["step"] if steps else None, "last_train_loss": steps[-1]["loss"] if steps else None,
     "tokens_per_s_last": steps[-1].get("tokens_per_s") if steps else None, "val_curve": vals,
     "eval_bf16": {k: ev.get(k) for k in ("bits_per_byte", "tokens", "tokens_per_s", "seconds", "precision",
                                           "moe_kernels", "experts_per_token")} if ev else None,
     "eval_exit": int(eval_rc)}
with open(os.path.join(d, "summary.json"), "w") as f:
    json.dump(s, f, indent=1)
print(json.dumps({k: s[k] for k in ("last_logged_step", "last_train_loss", "stopped_by_time_limit", "eval_bf16")}))
PY
if [ -n "${OUT:-}" ]; then
  cp "$DIR/summary.json" "$OUT/summary.json"
  cp "$DIR/metrics.jsonl" "$OUT/metrics.jsonl" 2> /dev/null
  cp "$DIR/train.log" "$OUT/train.log" 2> /dev/null
  phase "summary: $DIR/summary.json (copied to \$OUT with metrics.jsonl and train.log)"
else
  phase "summary: $DIR/summary.json"
fi
[ -f "$DIR/model.safetensors" ] && [ $EVAL_RC -eq 0 ] && { [ $RC -eq 0 ] || [ "$STOPPED" = true ]; } && exit 0
exit 1
