#!/usr/bin/env bash
# Where test-time training's time goes on the GPU (issue: adaptation time per window ≤ 1.0× its inference time).
# Runs the TTT recipe of scripts/device/ttt_energy.sh (router, norms, LoRA rank 8, AdamW; bf16, fused kernels) on the
# noise10 test stream with the simulated plant (the GPU runs the model only), three times: without TTT (the inference
# time of the same windows when nothing adapts), as it runs (adapt/infer ratio) and with --ttt-time-phases
# (adapt_seconds split by phase, the GPU waited for at each phase's end). With TTT, "infer" includes the work that the
# adapted weights cause in the next forward (the fused path re-merges each expert's LoRA factors into its weights).
# Usage: scripts/device/ttt_time.sh --bin WATTMOE --data DIR --model DIR [--name NAME] [--windows N] [-- MORE RUN FLAGS]
# Writes under OUT (default $OUT, else out/ttt_time): NAME.{nottt,plain,phases}.json (run summaries), NAME.log;
# prints one line per run: windows, infer and adapt ms per window, the ratio, and the phases in ms per window.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$SRC/build/wattmoe" DATA="$SRC/data" MODEL="$SRC/models/kjv-small" NAME="" WINDOWS=40 EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "ttt_time.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=${NAME:-$(basename "$MODEL")}
DIR=${OUT:-$SRC/out}/ttt_time
mkdir -p "$DIR"
source "$SRC/scripts/device/ttt_recipe.sh"
RUN=(--model "$MODEL" --device cuda --precision bf16 --data "$DATA/kjv.test.noise10.txt"
     --max-tokens $((WINDOWS * 128)) --policy skip --beta 0.5 "${EXTRA[@]}")
for mode in nottt plain phases; do
  flags=("${TTT[@]}")
  [ $mode = nottt ] && flags=()
  [ $mode = phases ] && flags+=(--ttt-time-phases)
  "$BIN" run "${RUN[@]}" "${flags[@]}" --summary "$DIR/$NAME.$mode.json" 2>>"$DIR/$NAME.log" ||
    { echo "ttt_time.sh: $NAME $mode run failed (see $DIR/$NAME.log)"; exit 1; }
  python3 - "$DIR/$NAME.$mode.json" "$NAME" "$mode" <<'PY'
import json, sys
s, name, mode = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
w = s["windows"]
line = f"{name} {mode}: {w} windows, infer {1e3 * s['infer_seconds'] / w:.2f} ms/window"
if mode != "nottt":
    line += f", adapt {1e3 * s['adapt_seconds'] / w:.2f} ms/window, ratio {s['adapt_infer_ratio']:.2f}"
ph = s.get("ttt", {}).get("adapt_phases_s")
if ph:
    line += "; phases ms/window: " + " ".join(f"{k} {1e3 * v / w:.2f}" for k, v in ph.items())
print(line)
PY
done
