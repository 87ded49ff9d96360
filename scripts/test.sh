#!/usr/bin/env bash
# Installs what is missing, builds, and runs the CPU test suite (everything but the `gpu` label).
#   scripts/test.sh              Release build in build/, with the Python package (its virtualenv: build/pyenv,
#                                scripts/python_env.sh; its tests: ctest label `python`)
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build (clang) in build-asan/, with the
#                                fuzzer and without the Python module
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--sanitize" ]; then
  export BUILD_DIR=${BUILD_DIR:-$root/build-asan} BUILD_TYPE=RelWithDebInfo
  CC=clang CXX=clang++ "$root/scripts/build.sh" -DWATTMOE_SANITIZE=ON -DWATTMOE_FUZZ=ON -DWATTMOE_CUDA=OFF -DWATTMOE_BENCH=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  export BUILD_DIR=${BUILD_DIR:-$root/build}
  "$root/scripts/install_deps.sh"  # python3-venv for the virtualenv
  python=$("$root/scripts/python_env.sh" "$BUILD_DIR/pyenv")
  "$root/scripts/build.sh" -DWATTMOE_PYTHON=ON -DPython_EXECUTABLE="$python"
fi
cd "$BUILD_DIR"
ctest -LE gpu --output-on-failure -j "$(nproc)" --timeout 600
