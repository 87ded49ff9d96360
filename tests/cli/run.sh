#!/usr/bin/env bash
# `wattmoe run` end to end on the shipped model and a small text: a static run reproduces `wattmoe eval` (batch 1)
# exactly; a power-budget run holds its target on the simulated GPU and logs one JSONL line per window with the
# controller's decision; a TTT run adapts and accounts its time; static pruning
# by calibration use masks the least-used experts; bad flags give one clear error line.
# Usage: bash run.sh <path-to-wattmoe> <source-dir>. Needs python3's standard library.
set -u
BIN=${1:?usage: run.sh <wattmoe> <source-dir>}
SRC=${2:?usage: run.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# A text the model knows (Genesis-like English) and one it does not (upper case), ~6 kB each.
python3 - "$TMP" <<'PY'
import sys, random
r = random.Random(7)
words = "and the lord said unto moses that he should go up into the mount of god and speak unto the people".split()
text = " ".join(r.choice(words) for _ in range(1200)) + "\n"
open(sys.argv[1] + "/text.txt", "w").write(text)
open(sys.argv[1] + "/caps.txt", "w").write(text.upper())
PY

# 1. Static run == eval with batch 1 (same windows, same routing).
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" --summary "$TMP/run.json" --log "$TMP/run.jsonl" 2>/dev/null ||
  fail "static run failed"
"$BIN" eval --model "$MODEL" --data "$TMP/text.txt" --batch 1 --json > "$TMP/eval.json" || fail "eval failed"
python3 - "$TMP" <<'PY' || fail "static run differs from eval"
import json, sys
d = sys.argv[1]
r, e = json.load(open(d + "/run.json")), json.load(open(d + "/eval.json"))
assert r["tokens"] == e["tokens"] and abs(r["bits_per_byte"] - e["bits_per_byte"]) < 1e-12, (r["bits_per_byte"], e["bits_per_byte"])
rows = [json.loads(l) for l in open(d + "/run.jsonl")]
assert len(rows) == r["windows"] and sum(x["tokens"] for x in rows) == r["tokens"]
assert all(x["sim"]["power_w"] > 0 and x["sim_step_j"] > 0 for x in rows)
PY

# 2. Power budget: top-2 draws ~390 W (simulated); hold 320 W and then 290 W.
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" --expert-shape 4096x14336 --power-budget-w 320 \
  --budget-schedule 25:290 --summary "$TMP/b.json" --log "$TMP/b.jsonl" 2>/dev/null || fail "budget run failed"
python3 - "$TMP" <<'PY' || fail "budget not held"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/b.jsonl")]
assert rows[0]["control"]["u"] == 0 and rows[0]["sim_power_w"] > 360, rows[0]
for lo, hi, target in [(12, 25, 320), (37, len(rows) - 1, 290)]:
    seg = [r["sim_power_w"] for r in rows[lo:hi]]
    mean = sum(seg) / len(seg)
    assert abs(mean - target) / target < 0.05, (lo, hi, mean, target)
assert rows[-2]["control"]["target"] == 290 and rows[-2]["experts_per_token"] < 2
PY

# 3. TTT on the upper-case text: adapting beats not adapting, and the time is accounted.
"$BIN" run --model "$MODEL" --data "$TMP/caps.txt" --summary "$TMP/n.json" 2>/dev/null || fail "caps run failed"
"$BIN" run --model "$MODEL" --data "$TMP/caps.txt" --ttt --ttt-optimizer adamw --ttt-groups router,norms,lora \
  --lora-rank 4 --ttt-lr 1e-2 --summary "$TMP/t.json" 2>/dev/null || fail "ttt run failed"
python3 - "$TMP" <<'PY' || fail "ttt did not help"
import json, sys
n, t = json.load(open(sys.argv[1] + "/n.json")), json.load(open(sys.argv[1] + "/t.json"))
assert t["bits_per_byte"] < n["bits_per_byte"] - 0.2, (t["bits_per_byte"], n["bits_per_byte"])
assert t["adapted_windows"] == t["windows"] and t["adapt_seconds"] > 0 and t["infer_seconds"] > 0
PY

# 4. Static pruning by calibration use (as `wattmoe eval`): the calibration's 2 least-used experts of each layer take
# no pair in the run, and the routing JSON names them.
"$BIN" eval --model "$MODEL" --data "$TMP/text.txt" --json > "$TMP/cal.json" 2>/dev/null || fail "calibration eval failed"
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" --prune-least-used 2 --calibration "$TMP/cal.json" \
  --summary "$TMP/p.json" 2>/dev/null || fail "pruned run failed"
python3 - "$TMP" <<'PY' || fail "pruned run used a pruned expert"
import json, sys
p = json.load(open(sys.argv[1] + "/p.json"))
layers = p["routing"]["pruned"]["layers"]
assert p["routing"]["pruned"]["least_used"] == 2 and layers, p["routing"]["pruned"]
for l, ids in layers.items():
    assert len(ids) == 2 and all(p["expert_counts"][l][e] == 0 for e in ids), (l, ids, p["expert_counts"][l])
    assert sum(p["expert_counts"][l]) == 2 * p["tokens"], l
PY

# 5. Bad flags: one "wattmoe: error:" line naming the flag, non-zero exit, no signal.
bad() {
  local want=$1; shift
  "$BIN" run --model "$MODEL" --data "$TMP/text.txt" "$@" > /dev/null 2> "$TMP/err"
  local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "'$*' exited $rc"; return; fi
  if [ "$(wc -l < "$TMP/err")" -ne 1 ] || ! grep -q "^wattmoe: error:.*$want" "$TMP/err"; then
    fail "'$*': expected one error line mentioning '$want', got: $(cat "$TMP/err")"
  fi
}
bad "power-budget" --power-budget-w -5
bad "exclusive" --power-budget-w 300 --energy-budget-j-per-token 0.01
bad "budget-schedule" --power-budget-w 300 --budget-schedule 10:0
bad "budget-schedule" --budget-schedule 10:300
bad "top_p\|p " --policy top_p --route-top-p 1.5
bad "k_max\|k-max" --k-max 99
bad "mask" --mask 42
bad "expert-shape" --expert-shape 4096by14336
bad "policy" --policy fastest
bad "ttt-trigger" --ttt --ttt-trigger sometimes
bad "group" --ttt --ttt-groups router,gills
bad "lr" --ttt --ttt-lr -1
bad "ttt-source-check" --ttt --ttt-source-check -1
bad "ttt-source-margin" --ttt --ttt-source-margin -0.1
bad "ttt-backoff" --ttt --ttt-backoff -2
bad "control-policy\|policy" --power-budget-w 300 --control-policy fastest
bad "needs --calibration" --prune-least-used 1
bad "prune-least-used.*budget" --prune-least-used 1 --calibration "$TMP/cal.json" --power-budget-w 300

[ $failures -eq 0 ] && echo "run.sh: all checks passed"
exit $failures
