#!/usr/bin/env bash
# bench/energy_policies end to end on the CPU (a smoke test of its flow; the numbers mean nothing): the shipped model,
# a fake 100 W sensor, prefill and one decode stream, a mask point (calibration) and a host-routed policy; then
# bench/energy_table.py on its records. Also: bad arguments fail with one clear line and exit status 2.
#   tests/bench/energy_policies_cpu.sh ENERGY_POLICIES_BIN SOURCE_DIR
set -euo pipefail
BIN=$1 SRC=$2
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BIN" --model "$SRC/models/kjv-small" --data "$SRC/README.md" --out "$D/run" --device cpu --sensor fake \
  --precision fp32 --points "topk; topk k_max=1; skip beta=0.5; mask r=2" --modes prefill,decode1 --batch 2 \
  --seq 16 --window-s 0.15 --reps 2 --warmup-s 0.02 --idle-s 0.2 --settle-s 0 --quality-tokens 256 \
  --report-data "$SRC/docs/ARCHITECTURE.md" --time-budget-s 120 2> "$D/log" || { cat "$D/log"; fail "energy_policies exited $?"; }
J="$D/run/measurements.jsonl"
[ "$(grep -c '"kind":"window"' "$J")" -eq 16 ] || fail "expected 4 points x 2 modes x 2 reps = 16 windows"
[ "$(grep -c '"kind":"idle"' "$J")" -eq 2 ] || fail "expected idle at the start and the end"
[ "$(grep -c '"kind":"quality"' "$J")" -eq 8 ] || fail "expected a tuning and a held-out quality pass per point"
[ "$(grep -c '"split":"report"' "$J")" -eq 4 ] || fail "expected 4 held-out passes (--report-data)"
grep -q '"kind":"calibration"' "$J" || fail "mask r=2 needs a calibration record"
grep -q 'ETA' "$D/log" || fail "no progress lines"
python3 - "$D/run/summary.json" <<'PY' || fail "summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["model"] == "kjv-small" and s["reps"] == 2 and s["windows"] == 16, s
rows = {(r["mode"], r["point"]): r for r in s["rows"]}
assert len(rows) == 8, rows.keys()
assert rows[("prefill", "topk")]["baseline"] and rows[("decode1", "topk")]["experts_per_token"] == 2.0
assert rows[("decode1", "topk k_max=1")]["experts_per_token"] == 1.0
assert 0 < rows[("prefill", "topk k_max=1")]["analytic_total_share"] < 1
assert s["report_data"].endswith("docs/ARCHITECTURE.md")
for r in rows.values():
    assert r["report_bits_per_byte"] > 0 and r["report_bits_per_byte"] != r["quality_bits_per_byte"], r
assert abs(s["idle"]["mean_w"] - 100) < 1e-6
PY
python3 - "$J" <<'PY' || fail "each rep should start one point later (rotated order)"
import json, sys
ws = [r for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "window"]
first = {r: next(w["point"] for w in ws if w["rep"] == r) for r in (0, 1)}
assert first[0] != first[1], first
PY
python3 "$SRC/bench/energy_table.py" "$J" --goal-model kjv-small > "$D/table.md" || fail "energy_table.py"
grep -q '| topk (top-2) | host | 2 |' "$D/table.md" || fail "table: no top-2 row"

# Clear errors: exit 2 and one line naming the problem.
expect_error() {  # expect_error TEXT args...
  local text=$1; shift
  local rc=0
  "$BIN" "$@" > "$D/out" 2> "$D/err" || rc=$?
  [ $rc -eq 2 ] || fail "expected exit status 2, got $rc for: $*"
  [ "$(wc -l < "$D/err")" -eq 1 ] || { cat "$D/err"; fail "expected one line for: $*"; }
  grep -q "$text" "$D/err" || { cat "$D/err"; fail "expected '$text' for: $*"; }
}
expect_error "skip does not take p" --model "$SRC/models/kjv-small" --data "$SRC/README.md" --out "$D/x" \
  --device cpu --sensor fake --precision fp32 --points "skip p=0.5"
expect_error "nope.txt" --model "$SRC/models/kjv-small" --data "$SRC/README.md" --report-data "$D/nope.txt" \
  --out "$D/x" --device cpu --sensor fake --precision fp32
expect_error "no config.json" --model "$D/nope" --data "$SRC/README.md" --out "$D/x"
expect_error "expected --model DIR, or --random-init" --data "$SRC/README.md" --out "$D/x"
expect_error "unknown mode" --model "$SRC/models/kjv-small" --data "$SRC/README.md" --out "$D/x" --device cpu \
  --sensor fake --precision fp32 --modes prefill,decod8
echo "energy_policies_cpu: ok"
