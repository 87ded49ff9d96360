#!/usr/bin/env bash
# Every GPU test (ctest label `gpu`: the op harness, whole-model parity, the MoE layer, the profile blocks), then
# compute-sanitizer: memcheck over the op harness, the model parity and fused-model tests and the MoE layer's
# 128-row and graph cases; racecheck over the op harness (its kernels reduce through shared memory). Read only: never
# changes clocks or power limits. Each step writes its log under OUT_DIR; the exit status is non-zero if any step failed.
# Usage: scripts/device/gpu_tests.sh [--tests BINARY] [--out DIR] [--no-sanitizer]
#   --tests: a CUDA build's tests/wattmoe_gpu_tests (default build/tests/wattmoe_gpu_tests; its shared libraries on
#   LD_LIBRARY_PATH); --out: default $OUT/gpu_tests, else out/gpu_tests.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTS="$SRC/build/tests/wattmoe_gpu_tests" DIR=${OUT:+$OUT/gpu_tests} SAN=1
DIR=${DIR:-$SRC/out/gpu_tests}
while [ $# -gt 0 ]; do
  case $1 in
    --tests) TESTS=$2; shift 2 ;;
    --out) DIR=$2; shift 2 ;;
    --no-sanitizer) SAN=0; shift ;;
    *) echo "gpu_tests.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIR"
nvidia-smi -L > "$DIR/card.txt" 2>&1
status=0
step() {  # name, command...: runs it, logs it, prints one line
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$DIR/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  echo "$name: rc $rc, $((SECONDS - t0)) s: $(grep -E 'PASSED|FAILED|ERROR SUMMARY|RACECHECK SUMMARY' "$DIR/$name.log" | tr '\n' ' ')"
}
step tests "$TESTS"
if [ $SAN -eq 1 ]; then
  step memcheck compute-sanitizer --tool memcheck --error-exitcode 9 "$TESTS" \
    --gtest_filter='DenseOpsCuda.*:ModelParityCuda.*:FusedMoeModel.*:*MoeLayer*prefill128*:*MoeLayerCuda*'
  step racecheck compute-sanitizer --tool racecheck --error-exitcode 9 "$TESTS" --gtest_filter='DenseOpsCuda.*'
fi
exit $status
