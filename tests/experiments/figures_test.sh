#!/usr/bin/env bash
# scripts/experiments/figures.py --from-records on the committed records: every PNG it lists is written and nonempty
# and figures.json names them; with a record removed (an energy file, a budget trace, a TTT summary, the CPU run of
# the expert-use heatmaps, the simulated edge run's windows, the equal-adaptation CPU records, the natural-shift runs,
# the natural-shift expert-use runs, a TTT timing run, a serve benchmark's summary, a serve tier run's log, a decode-graphs energy file, a prefill-seeds
# energy file) it
# fails with exit 2, names the missing file and writes
# no figure.
#   tests/experiments/figures_test.sh PYTHON3 SOURCE_DIR
set -euo pipefail
py=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fig="$src/scripts/experiments/figures.py"
rec="$src/results/h100-2026-12-06"
use="$src/results/cpu-kjv-small-ttt-use"
edge="$src/results/sim-edge"
ea="$src/results/cpu-kjv-small-ablations"
shift="$src/results/cpu-mix-small-shift"
shift_use="$src/results/cpu-mix-small-shift-use"
tier="$src/results/h100-2026-12-07/device-quant"
graphs="$src/results/h100-2026-12-07/decode-graphs"
prefill="$src/results/h100-2026-12-08/g3-prefill"

rc=0
"$py" "$fig" --from-records "$rec" --ttt-use-records "$use" --sim-edge-records "$edge" --equal-adaptation-records "$ea" \
  --natural-shift-records "$shift" --natural-shift-use-records "$shift_use" --serve-tier-records "$tier" \
  --decode-graphs-records "$graphs" \
  --prefill-seeds-records "$prefill" --out "$tmp/out" > "$tmp/log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/log"; echo "FAIL: figures.py exited $rc"; exit 1; }
expect=(pareto_kjv-small.png pareto_medium.png pareto_mixtral.png edp.png power_budget.png power_budget-medium.png
        power_budget-medium-routing.png ttt.png ttt_seeds.png ttt_expert_use.png sim_edge.png equal_adaptation.png
        ttt_ablations.png natural_shift.png natural_shift_use.png ttt_time.png serve_billing.png serve_tier.png decode_graphs.png
        prefill_seeds.png)
for f in "${expect[@]}"; do
  [ -s "$tmp/out/$f" ] || { echo "FAIL: $f missing or empty"; ls -l "$tmp/out"; exit 1; }
  head -c 8 "$tmp/out/$f" | od -An -c | grep -q 'P   N   G' || { echo "FAIL: $f is not a PNG"; exit 1; }
  grep -q "\"png\": \"$f\"" "$tmp/out/figures.json" || { echo "FAIL: figures.json does not list $f"; exit 1; }
done
n=$(ls "$tmp/out"/*.png | wc -l)
[ "$n" = "${#expect[@]}" ] || { echo "FAIL: $n PNGs, expected ${#expect[@]}"; exit 1; }

for missing in energy/medium.jsonl budget-medium/step.jsonl ttt/kjv-small.summary.json use/static.json edge/windows.jsonl \
    ea/records.jsonl shift/runs.jsonl shift_use/runs.jsonl ttt-merge/ttt_time/wm-medium-base.phases.json serve-idle-billing/summary.json \
    tier/serve-bf16-0.7/servebf16.log graphs/energy/medium_s3_slots8.jsonl \
    prefill/medium_prefill_main-e605672_seed2.jsonl; do
  rm -rf "$tmp/rec" "$tmp/out2"
  cp -r "$rec" "$tmp/rec"
  cp -r "$use" "$tmp/rec/use"
  cp -r "$edge" "$tmp/rec/edge"
  cp -r "$ea" "$tmp/rec/ea"
  cp -r "$shift" "$tmp/rec/shift"
  cp -r "$shift_use" "$tmp/rec/shift_use"
  cp -r "$tier" "$tmp/rec/tier"
  cp -r "$graphs" "$tmp/rec/graphs"
  cp -r "$prefill" "$tmp/rec/prefill"
  rm "$tmp/rec/$missing"
  rc=0
  "$py" "$fig" --from-records "$tmp/rec" --ttt-use-records "$tmp/rec/use" --sim-edge-records "$tmp/rec/edge" \
    --equal-adaptation-records "$tmp/rec/ea" --natural-shift-records "$tmp/rec/shift" \
    --natural-shift-use-records "$tmp/rec/shift_use" \
    --serve-tier-records "$tmp/rec/tier" --decode-graphs-records "$tmp/rec/graphs" \
    --prefill-seeds-records "$tmp/rec/prefill" --out "$tmp/out2" > "$tmp/log" 2>&1 || rc=$?
  [ "$rc" = 2 ] || { cat "$tmp/log"; echo "FAIL: without $missing exit $rc, expected 2"; exit 1; }
  grep -q "error: missing record .*$missing" "$tmp/log" || { cat "$tmp/log"; echo "FAIL: no error naming $missing"; exit 1; }
  ! ls "$tmp/out2"/*.png > /dev/null 2>&1 || { echo "FAIL: figures drawn from a partial set (without $missing)"; exit 1; }
done
echo "figures_test: ${#expect[@]} figures; 13 missing records refused"
