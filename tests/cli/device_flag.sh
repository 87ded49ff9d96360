#!/usr/bin/env bash
# --device on train and eval: `cpu` works; `cuda` with no usable GPU fails at once with a clear one-line error and a
# non-zero exit (never a signal, never a failed internal check), whether this wattmoe was built without CUDA or with
# it (CI builds with nvcc but has no GPU). CUDA_VISIBLE_DEVICES="" hides any GPU, so the test means the same on a
# machine that has one. An unknown device name is an error too.
# Usage: bash device_flag.sh <path-to-wattmoe> <source-dir>
set -u
w=${1:?usage: device_flag.sh <wattmoe> <source-dir>}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_device_flag.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset WATTMOE_LOG
ERR_DIR=$tmp
# shellcheck source=lib/expect_error.sh
. "$(dirname "$0")/lib/expect_error.sh"

python3 - "$tmp" <<'PY'
import random, sys
random.seed(1)
words = "and the lord said unto moses in that day he went up into a land of milk and honey".split()
for name, n in (("train", 40000), ("val", 6000)):
    text, size = [], 0
    while size < n:
        line = " ".join(random.choice(words) for _ in range(12)) + ".\n"
        text.append(line); size += len(line)
    open(f"{sys.argv[1]}/{name}.txt", "w").write("".join(text))
PY

# expect_error, and no model directory left behind (the failure came before any work).
expect_device_error() {
  expect_error "$@" || return 0
  [ -e "$tmp/m_cuda/metrics.jsonl" ] && fail "--device cuda failed only after starting work: $*"
  return 0
}

# Control: the CPU path trains and evaluates (so the errors below are about the device, not the inputs).
"$w" train --preset tiny --steps 2 --eval-every 2 --device cpu --train "$tmp/train.txt" --val "$tmp/val.txt" \
  --out "$tmp/m" --json > "$tmp/train.json" 2> "$tmp/train.log" || fail "train --device cpu: $(cat "$tmp/train.log")"
grep -q '"device":"cpu"' "$tmp/train.json" || fail "train JSON lacks \"device\":\"cpu\": $(cat "$tmp/train.json")"
"$w" eval --model "$tmp/m" --data "$tmp/val.txt" --seq 64 --device cpu --json > "$tmp/eval.json" 2> "$tmp/eval.log" \
  || fail "eval --device cpu: $(cat "$tmp/eval.log")"
grep -q '"bits_per_byte"' "$tmp/eval.json" || fail "eval --device cpu printed no bits_per_byte"

# Without a usable GPU, whichever way this wattmoe was built.
cuda_msg="--device cuda: \(no CUDA device is visible\|this wattmoe was built without CUDA\)"
expect_device_error "$cuda_msg" "$w" train --preset tiny --steps 2 --device cuda --train "$tmp/train.txt" \
  --val "$tmp/val.txt" --out "$tmp/m_cuda"
expect_device_error "$cuda_msg" "$w" eval --model "$tmp/m" --data "$tmp/val.txt" --device cuda
expect_device_error "--device tpu: expected cpu or cuda" "$w" train --preset tiny --steps 2 --device tpu \
  --train "$tmp/train.txt" --val "$tmp/val.txt" --out "$tmp/m_cuda"
expect_device_error "--device gpu: expected cpu or cuda" "$w" eval --model "$tmp/m" --data "$tmp/val.txt" --device gpu

finish device_flag
