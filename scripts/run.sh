#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job on the embedded default: the shipped model
# models/mix-small (trained on prose only: fortunes, Austen, Python and Linux documentation) meets a domain it never
# saw, the King James Bible. It scores the text and generates a sample (on the GPU when there is one), then reads
# the same text under a power budget while adapting itself online (power from the simulated GPU: the model runs on
# the CPU), and shows live telemetry from NVML when a GPU is present, else from the simulated GPU (labelled as such).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
w="$root/build/wattmoe"
model=${WATTMOE_MODEL:-$root/models/mix-small}
data=${WATTMOE_DATA:-$root/data}
[ -f "$data/kjv.val.txt" ] || "$w" data build --out "$data"
"$w" info --model "$model"
# Eval and generation run on the GPU when this build has CUDA and a GPU answers, else on the CPU.
dev=cpu
if nvidia-smi -L >/dev/null 2>&1 &&
   "$w" eval --model "$model" --data "$data/kjv.val.txt" --max-tokens 8 --device cuda >/dev/null 2>&1; then
  dev=cuda
fi
echo "device: $dev"
# The unadapted score, top-2, on the tokens the run below reads.
"$w" eval --model "$model" --data "$data/kjv.val.txt" --max-tokens 20000 --device "$dev"
"$w" generate --model "$model" --prompt "And God said" --max-new-tokens 160 --seed 1 --device "$dev"
# The run's budget and TTT knobs are in scripts/main_job.toml (390 W, what top-2 without adaptation draws here,
# simulated; next-token TTT of router, norms and LoRA). A live line per second on stderr, the verdict ("budget 390 W
# held: ...") and a few lines on stdout, the per-window log in build/run.jsonl and the full summary JSON in
# build/run_summary.json.
"$w" run --config "$root/scripts/main_job.toml" --model "$model" --data "$data/kjv.val.txt" --max-tokens 20000 \
  --log "$root/build/run.jsonl" --summary "$root/build/run_summary.json"
python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(json.dumps({k: s[k] for k in ['schema','bits_per_byte','experts_per_token','adapt_infer_ratio','measured']} | {'mean_power_w': s['plant']['mean_power_w'], 'label': s['plant']['label'], 'held': s['budget']['held']}))" "$root/build/run_summary.json"
"$w" telemetry --duration 3 --interval-ms 250
