#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on the embedded default model.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
model=${WATTMOE_MODEL:-$root/tests/fixtures/mixtral_gqa}
"$root/build/wattmoe" info --model "$model"
