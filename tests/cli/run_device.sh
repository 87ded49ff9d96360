#!/usr/bin/env bash
# `wattmoe run --device`: `cpu` runs and says so in the summary; `cuda` with no usable GPU fails at once with one
# clear error line and a non-zero exit (never a signal), whether this wattmoe was built without CUDA or with it (CI
# builds with nvcc but has no GPU; CUDA_VISIBLE_DEVICES="" hides any GPU so the test means the same everywhere), and
# before any work (no log written); an unknown device name is an error; --ttt with --device cuda is refused (TTT runs
# on the CPU only for now) whatever the machine has. The GPU comparison is tests/gpu/run_device_cuda.sh.
# Usage: bash run_device.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: run_device.sh <wattmoe> <source-dir>}
SRC=${2:?usage: run_device.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_run_device.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

python3 - "$TMP" <<'PY'
import sys, random
r = random.Random(3)
words = "and the lord said unto moses that he should go up into the mount of god".split()
open(sys.argv[1] + "/text.txt", "w").write(" ".join(r.choice(words) for _ in range(300)) + "\n")
PY

# expect_error PHRASE args...: exit 1..127, exactly one "wattmoe: error:" line containing PHRASE, no internal check,
# no log file (the failure came before any window was scored).
expect_error() {
  local phrase=$1; shift
  rm -f "$TMP/bad.jsonl"
  CUDA_VISIBLE_DEVICES="" "$BIN" run --model "$MODEL" --data "$TMP/text.txt" --log "$TMP/bad.jsonl" "$@" \
    > "$TMP/out" 2> "$TMP/err"; local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "expected a clean failure, got rc=$rc: $*"; return; fi
  grep -q "^wattmoe: error: .*$phrase" "$TMP/err" || fail "missing '$phrase' for '$*' in: $(cat "$TMP/err")"
  if grep -qi "check failed\|internal" "$TMP/err"; then fail "internal check in: $(cat "$TMP/err")"; fi
  [ "$(grep -c '^wattmoe: error:' "$TMP/err")" -eq 1 ] || fail "expected one error line: $(cat "$TMP/err")"
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
expect_error "$cuda_msg" --device cuda
expect_error "$cuda_msg" --device cuda --power-budget 300
expect_error "--device gpu: expected cpu or cuda" --device gpu
expect_error "--device tpu: expected cpu or cuda" --device tpu --ttt
expect_error "--ttt runs on the CPU only for now" --device cuda --ttt
expect_error "--ttt runs on the CPU only for now" --ttt --ttt-groups router --device cuda --power-budget 300

if [ $failures -ne 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi
echo "run_device: all checks passed"
