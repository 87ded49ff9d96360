#!/usr/bin/env bash
# Where adaptation's GPU time goes, kernel by kernel: the GPU kernels' own durations (Nsight Compute's
# gpu__time_duration, clocks left alone) of the same windows run without TTT and with the TTT recipe of
# scripts/device/ttt_energy.sh, per window, grouped by kernel name. Their difference is the kernels adaptation adds;
# set beside ttt_time.sh's wall-clock ms per window it says how much of adaptation is GPU work and how much is the
# host (launches, synchronisations, host-side optimizer and copies). Profiled runs are slower than plain ones: only
# the kernels' durations are read, never the wall time.
# Usage: scripts/device/ttt_kernels.sh --bin WATTMOE --data DIR --model DIR [--name NAME] [--windows N]
# Writes under OUT (default $OUT, else out/ttt_kernels): NAME.{nottt,ttt}.csv (ncu's raw rows), NAME.kernels.json
# (per mode: kernels and GPU ms per window, the top kernels), NAME.log; prints a short table.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$SRC/build/wattmoe" DATA="$SRC/data" MODEL="$SRC/models/kjv-small" NAME="" WINDOWS=6
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    *) echo "ttt_kernels.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v ncu > /dev/null || { echo "ttt_kernels.sh: ncu (Nsight Compute) is not on the PATH"; exit 2; }
NAME=${NAME:-$(basename "$MODEL")}
DIR=${OUT:-$SRC/out}/ttt_kernels
mkdir -p "$DIR"
source "$SRC/scripts/device/ttt_recipe.sh"
RUN=(--model "$MODEL" --device cuda --precision bf16 --data "$DATA/kjv.test.noise10.txt"
     --max-tokens $((WINDOWS * 128)) --policy skip --beta 0.5)
for mode in nottt ttt; do
  flags=("${TTT[@]}")
  [ $mode = nottt ] && flags=()
  ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base --print-kernel-base function \
    "$BIN" run "${RUN[@]}" "${flags[@]}" --summary "$DIR/$NAME.$mode.json" \
    > "$DIR/$NAME.$mode.csv" 2>>"$DIR/$NAME.log" ||
    { echo "ttt_kernels.sh: $NAME $mode failed (see $DIR/$NAME.log)"; exit 1; }
done
python3 - "$DIR" "$NAME" "$WINDOWS" <<'PY'
import csv, collections, json, sys
d, name, windows = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
for mode in ("nottt", "ttt"):
    lines = [l for l in open(f"{d}/{name}.{mode}.csv") if l.startswith('"')]
    rows = [r for r in csv.DictReader(lines) if r.get("Metric Name") == "gpu__time_duration.sum"]
    per = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        k = r["Kernel Name"]
        per[k][0] += 1
        per[k][1] += float(r["Metric Value"].replace(",", "")) * 1e-6  # ns → ms
    # The run also loads the model and warms up; the windows' kernels are most of them (kernels per window over all).
    total = sum(v[1] for v in per.values())
    out[mode] = {"kernels": sum(v[0] for v in per.values()), "gpu_ms": total,
                 "kernels_per_window": sum(v[0] for v in per.values()) / windows, "gpu_ms_per_window": total / windows,
                 "by_kernel": {k: {"launches_per_window": v[0] / windows, "ms_per_window": v[1] / windows}
                               for k, v in sorted(per.items(), key=lambda kv: -kv[1][1])}}
n, t = out["nottt"], out["ttt"]
out["added_by_ttt"] = {"kernels_per_window": t["kernels_per_window"] - n["kernels_per_window"],
                       "gpu_ms_per_window": t["gpu_ms_per_window"] - n["gpu_ms_per_window"]}
json.dump(out, open(f"{d}/{name}.kernels.json", "w"), indent=1)
print(f"{name}: {windows} windows; kernels/window {n['kernels_per_window']:.0f} without TTT, "
      f"{t['kernels_per_window']:.0f} "
      f"with; GPU ms/window {n['gpu_ms_per_window']:.2f} without, {t['gpu_ms_per_window']:.2f} with "
      f"(+{out['added_by_ttt']['gpu_ms_per_window']:.2f} ms from adaptation)")
for k, v in list(t["by_kernel"].items())[:15]:
    b = n["by_kernel"].get(k, {"launches_per_window": 0, "ms_per_window": 0})
    print(f"  {k[:60]:60s} ttt {v['launches_per_window']:7.1f}/w {v['ms_per_window']:7.3f} ms/w   "
          f"nottt {b['launches_per_window']:7.1f}/w {b['ms_per_window']:7.3f} ms/w")
PY
