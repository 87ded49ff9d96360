#!/usr/bin/env bash
# Installs what is missing, builds, and runs the CPU test suite (everything but the `gpu` label).
#   scripts/test.sh              Release build in build/
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (clang) in build-asan/, with the fuzzer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--sanitize" ]; then
  export BUILD_DIR=${BUILD_DIR:-$root/build-asan} BUILD_TYPE=RelWithDebInfo
  CC=clang CXX=clang++ "$root/scripts/build.sh" -DWATTMOE_SANITIZE=ON -DWATTMOE_FUZZ=ON -DWATTMOE_CUDA=OFF -DWATTMOE_BENCH=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  export BUILD_DIR=${BUILD_DIR:-$root/build}
  "$root/scripts/build.sh"
fi
cd "$BUILD_DIR"
ctest -LE gpu --output-on-failure -j "$(nproc)" --timeout 600
