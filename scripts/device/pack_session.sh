#!/usr/bin/env bash
# Build here, carry there: builds the CUDA binaries (this machine has nvcc but no GPU) and packs what the GPU machine
# lacks into one file, .devcarry/session.tar.xz (ignored by git: /.dev*/ in .git/info/exclude), which
# scripts/device/session.sh unpacks into /tmp/wm:
#   wattmoe, wattmoe_gpu_tests, moe_layer_bench, energy_policies,   this build
#   attention_bench
#   lib/                                                            OpenBLAS, gfortran, quadmath, fmt, cpp-httplib,
#                                                                   brotli and this toolkit's CUPTI (dlopen'ed for launch
#                                                                   records; CUDA is there; libssl and zlib are assumed)
#   base/wattmoe, base/moe_layer_bench                              a reference build (--base DIR), for the phases that
#                                                                   compare outputs and speed with it
#   data/                                                           `wattmoe data build` (kjv splits and corruptions)
# Usage: scripts/device/pack_session.sh [--build DIR] [--base DIR]   (default build/; base: none)
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=$SRC/build BASE=""
while [ $# -gt 0 ]; do
  case $1 in
    --build) B=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    *) echo "pack_session.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$B/CMakeCache.txt" ] && grep -q "^CMAKE_CUDA_COMPILER:.*nvcc" "$B/CMakeCache.txt" ||
  { echo "pack_session.sh: $B is not a CUDA build directory (scripts/build.sh makes one where nvcc is)" >&2; exit 2; }
cmake --build "$B" --target wattmoe wattmoe_gpu_tests moe_layer_bench energy_policies attention_bench
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/lib" "$STAGE/data"
cp "$B/wattmoe" "$B/tests/wattmoe_gpu_tests" "$B/bench/moe_layer_bench" "$B/bench/energy_policies" \
  "$B/bench/attention_bench" "$STAGE/"
for lib in $(ldd "$B/wattmoe" "$B/bench/energy_policies" | awk '/=> \// {print $3}' | sort -u); do
  case $(basename "$lib") in
    libopenblas*|libgfortran*|libquadmath*|libfmt*|libcpp-httplib*|libbrotli*) cp -L "$lib" "$STAGE/lib/" ;;
  esac
done
NVCC=$(grep "^CMAKE_CUDA_COMPILER:" "$B/CMakeCache.txt" | cut -d= -f2)
for cupti in "$(dirname "$NVCC")"/../lib*/libcupti.so.[0-9]* "$(dirname "$NVCC")"/../extras/CUPTI/lib64/libcupti.so.[0-9]*; do
  [ -f "$cupti" ] && cp -L "$cupti" "$STAGE/lib/" && break
done
if [ -n "$BASE" ]; then mkdir -p "$STAGE/base" && cp "$BASE/wattmoe" "$BASE/moe_layer_bench" "$STAGE/base/"; fi
[ -f "$SRC/data/kjv.test.noise10.txt" ] || "$B/wattmoe" data build --out "$SRC/data"
cp "$SRC"/data/kjv.*.txt "$STAGE/data/"
mkdir -p "$SRC/.devcarry"
tar -C "$STAGE" -cf - . | xz -T0 -6 > "$SRC/.devcarry/session.tar.xz"
echo "pack_session.sh: $(du -h "$SRC/.devcarry/session.tar.xz" | cut -f1) in .devcarry/session.tar.xz"
