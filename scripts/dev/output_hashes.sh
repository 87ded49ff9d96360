#!/usr/bin/env bash
# Fixed commands whose outputs a refactor must leave bit-identical: eval and run (plain, with a routing policy, under a
# power budget, with test-time training), hashed with the timing fields removed (seconds, tokens/s, infer/adapt time).
# Usage: scripts/dev/output_hashes.sh WATTMOE DATA_DIR DEVICE(cpu|cuda) [PRECISION] [MOE_KERNELS] > hashes.txt
# Compare two binaries' hash lists with diff: identical lists mean identical outputs.
set -euo pipefail
W=$1 D=$2 DEV=$3 PREC=${4:-fp32} MOE=${5:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
M=$root/models/kjv-small
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strip_times() {  # drops keys whose values depend on the clock, from JSON or JSONL
  python3 -c '
import json, sys
T = {"seconds", "tokens_per_s", "infer_seconds", "adapt_seconds", "adapt_infer_ratio", "infer_s", "adapt_s"}
def clean(o):
    if isinstance(o, dict): return {k: clean(v) for k, v in o.items() if k not in T}
    if isinstance(o, list): return [clean(v) for v in o]
    return o
txt = sys.stdin.read().strip()
lines = txt.splitlines() if txt.startswith("{\"") and "\n{" in txt else [txt]
for l in lines:
    if l.strip(): print(json.dumps(clean(json.loads(l)), sort_keys=True))'
}
h() {  # name, command...: runs it, prints "name sha256 of the cleaned stdout" (@OUT in the command: a file read instead)
  local name=$1; shift
  local args=("${@//@OUT/$tmp/file}")
  rm -f "$tmp/file"
  "${args[@]}" > "$tmp/stdout" 2>"$tmp/err" || { echo "$name FAILED"; cat "$tmp/err" >&2; return; }
  local src=$tmp/stdout
  [ -f "$tmp/file" ] && src=$tmp/file
  strip_times < "$src" > "$tmp/out"
  echo "$name $(sha256sum < "$tmp/out" | cut -c1-16)"
}
common=(--model "$M" --device "$DEV" --precision "$PREC" ${MOE:+--moe-kernels "$MOE"})
V=$D/kjv.val.txt N=$D/kjv.val.noise10.txt
h eval.topk "$W" eval --json "${common[@]}" --data "$V" --max-tokens 20000
h eval.skip "$W" eval --json "${common[@]}" --data "$V" --max-tokens 20000 --policy skip --beta 0.5
h eval.topp "$W" eval --json "${common[@]}" --data "$V" --max-tokens 20000 --policy top_p --route-top-p 0.7
h eval.cost "$W" eval --json "${common[@]}" --data "$V" --max-tokens 20000 --policy cost --lambda 1 --expert-shape 4096x14336
h eval.kmax1 "$W" eval --json "${common[@]}" --data "$V" --max-tokens 20000 --k-max 1
h eval.stride "$W" eval --json "${common[@]}" --data "$V" --max-tokens 8000 --stride 64
runargs=(run "${common[@]}" --data "$N" --max-tokens 6000 --expert-shape 4096x14336)
h run.plain "$W" "${runargs[@]}" --summary @OUT
h run.plain.log "$W" "${runargs[@]}" --log @OUT --summary "$tmp/ignored"
h run.budget "$W" "${runargs[@]}" --power-budget-w 320 --summary @OUT
h run.budget.log "$W" "${runargs[@]}" --power-budget-w 320 --log @OUT --summary "$tmp/ignored"
ttt=(--ttt --ttt-optimizer adamw --ttt-groups router,norms,lora --lora-rank 4 --ttt-lr 1e-2)
h run.ttt "$W" "${runargs[@]}" "${ttt[@]}" --summary @OUT
h run.ttt.budget.log "$W" "${runargs[@]}" "${ttt[@]}" --power-budget-w 320 --log @OUT --summary "$tmp/ignored"
h run.ttt.entropy "$W" "${runargs[@]}" --ttt --ttt-nll 0 --ttt-entropy 1 --ttt-energy 0.1 --ttt-lb 0.01 --summary @OUT
