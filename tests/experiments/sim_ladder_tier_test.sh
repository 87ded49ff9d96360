#!/usr/bin/env bash
# scripts/experiments/sim_ladder_tier.py --table-only on a copy of the committed records: the table it makes is the
# committed table.md (which docs/results.md quotes), byte for byte.
#   tests/experiments/sim_ladder_tier_test.sh PYTHON3 SOURCE_DIR
set -euo pipefail
py=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rec="$src/results/sim-ladder-tier"
cp "$rec/runs.jsonl" "$rec/windows.jsonl" "$rec/meta.json" "$tmp/"
"$py" "$src/scripts/experiments/sim_ladder_tier.py" --table-only --out "$tmp" > /dev/null
diff "$rec/table.md" "$tmp/table.md"
echo "sim_ladder_tier_test: table.md made again from the records, identical"
