#!/usr/bin/env bash
# `wattmoe run --device`: `cpu` runs and says so in the summary; `cuda` with no usable GPU fails at once with one
# clear error line and a non-zero exit (never a signal), whether this wattmoe was built without CUDA or with it (CI
# builds with nvcc but has no GPU; CUDA_VISIBLE_DEVICES="" hides any GPU so the test means the same everywhere), and
# before any work (no log written), --ttt included; an unknown device name is an error. The GPU comparisons are
# tests/gpu/run_device_cuda.sh and (with --ttt) tests/gpu/run_ttt_cuda.sh.
# Usage: bash run_device.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: run_device.sh <wattmoe> <source-dir>}
SRC=${2:?usage: run_device.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_run_device.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
# shellcheck source=lib/expect_error.sh
. "$(dirname "$0")/lib/expect_error.sh"

python3 - "$TMP" <<'PY'
import sys, random
r = random.Random(3)
words = "and the lord said unto moses that he should go up into the mount of god".split()
open(sys.argv[1] + "/text.txt", "w").write(" ".join(r.choice(words) for _ in range(300)) + "\n")
PY

# run_refused PHRASE args...: `run` with these arguments is refused (expect_error) before any window was scored (no
# log file).
run_refused() {
  local phrase=$1; shift
  rm -f "$TMP/bad.jsonl"
  expect_error "$phrase" "$BIN" run --model "$MODEL" --data "$TMP/text.txt" --log "$TMP/bad.jsonl" "$@" || return 0
  [ -e "$TMP/bad.jsonl" ] && fail "--device failed only after starting work: $*"
  return 0
}

# Control: the CPU path runs, and the summary names the device (default and explicit).
for dev in "" "--device cpu"; do
  # shellcheck disable=SC2086
  "$BIN" run --model "$MODEL" --data "$TMP/text.txt" --seq 64 $dev --summary "$TMP/cpu.json" 2> "$TMP/cpu.log" ||
    fail "run $dev: $(cat "$TMP/cpu.log")"
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["device"]=="cpu" and j["tokens"]>0, j' \
    "$TMP/cpu.json" || fail "run $dev: summary lacks \"device\": \"cpu\""
done

cuda_msg="--device cuda: \(no CUDA device is visible\|this wattmoe was built without CUDA\)"
run_refused "$cuda_msg" --device cuda
run_refused "$cuda_msg" --device cuda --power-budget-w 300
run_refused "--device gpu: expected cpu or cuda" --device gpu
run_refused "--device tpu: expected cpu or cuda" --device tpu --ttt
run_refused "$cuda_msg" --device cuda --ttt
run_refused "$cuda_msg" --ttt --ttt-groups router --device cuda --power-budget-w 300

finish run_device
