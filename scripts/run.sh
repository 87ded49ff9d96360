#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on the embedded default: the shipped model
# (models/kjv-small) scored on the kjv validation text, a sample generation, and live telemetry from NVML when a GPU
# is present, else from the simulated GPU (labelled as such).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
w="$root/build/wattmoe"
model=${WATTMOE_MODEL:-$root/models/kjv-small}
data=${WATTMOE_DATA:-$root/data}
[ -f "$data/kjv.val.txt" ] || "$w" data build --out "$data"
"$w" info --model "$model"
"$w" eval --model "$model" --data "$data/kjv.val.txt" --max-tokens 65536
"$w" generate --model "$model" --prompt "And God said" --max-new 160 --seed 1
"$w" telemetry --duration 3 --interval-ms 250
