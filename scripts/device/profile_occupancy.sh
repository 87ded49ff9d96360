#!/usr/bin/env bash
# Achieved occupancy beside the theoretical one: `wattmoe profile --device cuda` writes each block's launch records
# (theoretical occupancy, CUPTI); this runs the same profile again under Nsight Compute, one token count per run and
# only the kernels of its launch-records pass (NVTX range "launch_records"; ncu names each kernel after the innermost
# range, the block), and merges ncu's achieved occupancy into the table (bench/occupancy_merge.py): per measurement
# "launches"."occupancy_achieved", weighted by each kernel's time as ncu measured it.
# Read only on the GPU. Usage:
#   scripts/device/profile_occupancy.sh --bin WATTMOE --table COSTS.json -- PROFILE_ARGS...
# PROFILE_ARGS are the profile's own (--model or --random-init/--config, --tokens-per-call ...) without --out; the
# table is written first without ncu. ncu's CSVs stay in $OUT (default /tmp/occupancy).
set -euo pipefail
W=/tmp/wm/wattmoe TABLE=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin) W=$2; shift 2 ;;
    --table) TABLE=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "profile_occupancy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$TABLE" ] || { echo "profile_occupancy.sh: --table FILE is required" >&2; exit 2; }
command -v ncu > /dev/null || { echo "profile_occupancy.sh: ncu (Nsight Compute) not found" >&2; exit 2; }
D=${OUT:-/tmp/occupancy}
mkdir -p "$D"
"$W" profile --device cuda "$@" --out "$TABLE"
TOKENS=$(python3 -c "import json,sys; print(' '.join(map(str, json.load(open(sys.argv[1]))['token_counts'])))" "$TABLE")
# The profile's own arguments without those the ncu runs set themselves.
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --tokens-per-call|--repeats|--warmup|--settle-s|--idle-s|--cuda-graph|--out) shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
CSVS=()
for T in $TOKENS; do
  # The energy windows are not what ncu is for here: one window per block, no warm-up, settle or idle; but each
  # as long as the table's (--min-window-s, default 0.5 s): NVML's counter estimate over 0.1 s windows read below
  # 0 J on an H100, which the profiler refuses. Plain launches (--cuda-graph 1), so ncu profiles one call of each
  # block, not a graph of 16 (the kernels are the same).
  ncu --clock-control none --nvtx --nvtx-include "launch_records/" --print-nvtx-rename kernel \
    --metrics sm__warps_active.avg.pct_of_peak_sustained_active,gpu__time_duration.sum --csv --print-units base \
    "$W" profile --device cuda "${ARGS[@]}" --tokens-per-call "$T" --out "$D/ncu_table_T$T.json" \
    --cuda-graph 1 --repeats 1 --warmup 0 --settle-s 0 --idle-s 0 > "$D/ncu_T$T.csv" 2> "$D/ncu_T$T.err"
  CSVS+=("$T=$D/ncu_T$T.csv")
done
python3 "$(dirname "${BASH_SOURCE[0]}")/../../bench/occupancy_merge.py" --table "$TABLE" "${CSVS[@]}"
