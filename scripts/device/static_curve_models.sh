#!/usr/bin/env bash
# How much of the static routing curve is the model rather than the policies: trains the `small` preset on the GPU
# with other seeds and a longer schedule, then scores every model (and the shipped one) on kjv val under the static
# policies of docs/results.md, with disjoint windows (stride 128) and sliding windows (stride 64). Read only: never
# changes clocks or power limits. Under OUT_DIR: one directory per trained model (its checkpoint and metrics), one
# eval JSON per (model, policy, stride) in evals/, and curves.jsonl with one line per eval.
#
# Usage: scripts/device/static_curve_models.sh --bin WATTMOE [--data DIR] [--out DIR] [--models NAME=TRAIN_ARGS ...]
#   --bin: a CUDA build of wattmoe (its shared libraries on LD_LIBRARY_PATH).
#   --data: holds kjv.train.txt and kjv.val.txt (default data). --out: default $OUT, else out/static_curve_models.
#   --models: each NAME=ARGS trains one model with `wattmoe train --device cuda --preset small ARGS`; default:
#             seed2 (--seed 2), seed3 (--seed 3), steps9000 (--steps 9000).
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="" DATA="$SRC/data" DIR=${OUT:-$SRC/out/static_curve_models} MODELS=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) DIR=$2; shift 2 ;;
    --models) shift; while [ $# -gt 0 ] && [[ $1 != --* ]]; do MODELS+=("$1"); shift; done ;;
    *) echo "static_curve_models.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "static_curve_models.sh: --bin must name a CUDA build of wattmoe" >&2; exit 2; }
[ ${#MODELS[@]} -gt 0 ] || MODELS=("seed2=--seed 2" "seed3=--seed 3" "steps9000=--steps 9000")
mkdir -p "$DIR/evals"
nvidia-smi -L > "$DIR/card.txt" 2>&1 || true

declare -A PATHS=([shipped]="$SRC/models/kjv-small")
for spec in "${MODELS[@]}"; do
  name=${spec%%=*} args=${spec#*=}
  echo "== train $name: $args" >&2
  # shellcheck disable=SC2086  # ARGS is a list of flags
  "$BIN" train --device cuda --preset small --train "$DATA/kjv.train.txt" --val "$DATA/kjv.val.txt" --out "$DIR/$name" $args \
    > "$DIR/$name.train.log" 2>&1
  PATHS[$name]="$DIR/$name"
done

POLICIES=("topk_k2:" "topk_k1:--k-max 1" "skip_0.3:--policy skip --beta 0.3" "skip_0.5:--policy skip --beta 0.5"
          "skip_0.7:--policy skip --beta 0.7" "top_p_0.7:--policy top_p --route-top-p 0.7"
          "top_p_0.8:--policy top_p --route-top-p 0.8")
: > "$DIR/curves.jsonl"
for name in "${!PATHS[@]}"; do
  for pol in "${POLICIES[@]}"; do
    for stride in 128 64; do
      out="$DIR/evals/$name.${pol%%:*}.s$stride.json"
      # shellcheck disable=SC2086
      "$BIN" eval --device cuda --model "${PATHS[$name]}" --data "$DATA/kjv.val.txt" --stride $stride \
        --moe-kernels host --json ${pol#*:} > "$out"
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"model": sys.argv[2],
"policy": sys.argv[3], "stride": d["stride"], "bits_per_byte": d["bits_per_byte"],
"experts_per_token": d["experts_per_token"]}))' "$out" "$name" "${pol%%:*}" >> "$DIR/curves.jsonl"
    done
  done
done
echo "static_curve_models.sh: $(wc -l < "$DIR/curves.jsonl") evals in $DIR/curves.jsonl" >&2
