#!/usr/bin/env bash
# Build here, carry there: builds wattmoe and bench/energy_policies (a CUDA build; this machine has nvcc but no GPU)
# and packs what the GPU machine lacks into one file, .dev-energy/energy.tar.xz (ignored by git: /.dev*/ in
# .git/info/exclude; ~15 MB):
#   energy/wattmoe, energy/energy_policies    the binaries
#   energy/lib*.so*                           OpenBLAS, gfortran, quadmath, fmt (the CUDA libraries are there already)
#   energy/data/kjv.{train,val}.txt           `wattmoe data build` (the machine has no bible-kjv package)
# On the GPU machine (carry .dev-energy), unpack into /tmp and run the device scripts (docs/performance.md,
# "Measured energy of routing policies: how to run"):
#   tar xJf .dev-energy/energy.tar.xz -C /tmp && scripts/device/train_medium.sh --bin /tmp/energy/wattmoe ...
#
# Usage: scripts/device/pack_energy.sh [BUILD_DIR]   (default build/; configured with CUDA, e.g. by scripts/build.sh)
set -euo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${1:-$SRC/build}
[ -f "$B/CMakeCache.txt" ] || { echo "pack_energy.sh: $B is not a CMake build directory (scripts/build.sh makes one)" >&2; exit 2; }
grep -q "^CMAKE_CUDA_COMPILER:.*nvcc" "$B/CMakeCache.txt" ||
  { echo "pack_energy.sh: $B is not a CUDA build (configure with -DWATTMOE_CUDA=ON)" >&2; exit 2; }
cmake --build "$B" --target wattmoe energy_policies
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/energy/data"
cp "$B/wattmoe" "$B/bench/energy_policies" "$STAGE/energy/"
for lib in $(ldd "$B/wattmoe" "$B/bench/energy_policies" | awk '/=> \// {print $3}' | sort -u); do
  case $(basename "$lib") in
    libopenblas*|libgfortran*|libquadmath*|libfmt*) cp -L "$lib" "$STAGE/energy/" ;;
  esac
done
if [ ! -f "$SRC/data/kjv.val.txt" ] || [ ! -f "$SRC/data/kjv.train.txt" ]; then
  "$B/wattmoe" data build --out "$SRC/data"
fi
cp "$SRC/data/kjv.train.txt" "$SRC/data/kjv.val.txt" "$STAGE/energy/data/"
mkdir -p "$SRC/.dev-energy"
tar -C "$STAGE" -cf - energy | xz -T0 -6 > "$SRC/.dev-energy/energy.tar.xz"
echo "pack_energy.sh: $(du -h "$SRC/.dev-energy/energy.tar.xz" | cut -f1) in .dev-energy/energy.tar.xz:"
tar tJf "$SRC/.dev-energy/energy.tar.xz" | sed 's/^/  /'
