#!/usr/bin/env bash
# Human results, machine results (issue 19): by default every command prints a short summary on stdout whose first
# line is the verdict; --json prints the full JSON instead, with its "schema"; --summary FILE writes the same JSON to a
# file. Checked per command (eval, run, train, info, telemetry, data build, profile): the verdict line's form, the schema, and
# that the verdict agrees with the JSON. For run also: a budget held, one NOT held, one too short to judge, an
# infeasible one refused (or run with --allow-infeasible), and the live line on stderr.
# Usage: bash results.sh <path-to-wattmoe> <source-dir>. Needs python3's standard library.
set -u
BIN=${1:?usage: results.sh <wattmoe> <source-dir>}
SRC=${2:?usage: results.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_results.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
. "$SRC/tests/cli/lib/expect_error.sh"
W() { timeout -s KILL 120 "$BIN" "$@"; }

python3 - "$TMP" <<'PY'
import sys, random
r = random.Random(7)
words = "and the lord said unto moses that he should go up into the mount of god and speak unto the people".split()
open(sys.argv[1] + "/text.txt", "w").write(" ".join(r.choice(words) for _ in range(1200)) + "\n")
PY

# first_line FILE REGEX WHAT: the file's first line matches the (extended) regex.
first_line() {
  head -1 "$1" | grep -Eq "$2" || fail "$3: first line '$(head -1 "$1")' does not match /$2/"
}
# schema FILE NAME: FILE is one JSON document whose "schema" is NAME.
schema() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["schema"] == sys.argv[2], j.get("schema")' \
    "$1" "$2" || fail "$1: no schema $2"
}

# --- eval: "bits/byte B on N tokens of FILE (POLICY: E experts/token)"; --json and --summary give the same JSON ---
EV=(eval --model "$MODEL" --data "$TMP/text.txt" --max-tokens 2000)
W "${EV[@]}" --summary "$TMP/eval_file.json" > "$TMP/eval.txt" 2> "$TMP/err" || fail "eval: $(cat "$TMP/err")"
first_line "$TMP/eval.txt" "^bits/byte [0-9]\.[0-9]{4} on 2,000 tokens of .*text\.txt \(topk k=2: 2\.00 experts/token\)$" eval
W "${EV[@]}" --json > "$TMP/eval.json" 2> "$TMP/err" || fail "eval --json: $(cat "$TMP/err")"
schema "$TMP/eval.json" wattmoe.eval/1
python3 - "$TMP" <<'PY' || fail "eval: the verdict, --json and --summary disagree"
import json, sys
d = sys.argv[1]
j, f = json.load(open(d + "/eval.json")), json.load(open(d + "/eval_file.json"))
for x in (j, f):
    x.pop("seconds"), x.pop("tokens_per_s")
assert j == f, "--summary differs from --json"
assert open(d + "/eval.txt").readline().startswith(f"bits/byte {j['bits_per_byte']:.4f} on 2,000 tokens")
PY
W "${EV[@]}" --policy skip --beta 0.5 > "$TMP/eval_skip.txt" 2> /dev/null
first_line "$TMP/eval_skip.txt" "\(skip beta=0\.50: 1\.[0-9]{2} experts/token\)$" "eval --policy skip"

# --- run with a budget that holds: the verdict names the target, the mean, the blocks; the JSON agrees ---
RUN=(run --model "$MODEL" --data "$TMP/text.txt" --expert-shape 4096x14336)
W "${RUN[@]}" --power-budget-w 320 --summary "$TMP/held.json" > "$TMP/held.txt" 2> "$TMP/held.err" ||
  fail "budget run: $(cat "$TMP/held.err")"
first_line "$TMP/held.txt" \
  "^budget 320 W held: mean 3[0-9]{2}\.[0-9] W \([+-][0-9]\.[0-9]%\), 4-window blocks within ±[0-9]\.[0-9]%, bits/byte [0-9.]+$" \
  "run, budget held"
schema "$TMP/held.json" wattmoe.run/1
python3 - "$TMP" <<'PY' || fail "run: the verdict and the JSON disagree"
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/held.json"))
assert s["verdict"] == open(d + "/held.txt").readline().rstrip("\n"), s["verdict"]
b = s["budget"]
assert b["held"] is True and b["unit"] == "W" and len(b["segments"]) == 1, b
seg = b["segments"][0]
assert abs(seg["mean_error"]) <= 0.02 and seg["worst_block_error"] <= 0.05 and seg["blocks"] >= 1, seg
assert 0 < b["floor"] < 320, b["floor"]
assert s["measured"] is False and s["plant"]["measured"] is False and "sim" not in s
PY
# The live line on stderr: window i/N, power against the target, the knob, experts/token, bits/byte.
grep -Eq "run: window 1/[0-9]+ +sim [0-9.]+ W \(target 320 W, [+-][0-9.]+%\) +skip beta=[0-9.]+ +[0-9.]+ experts/token +bits/byte [0-9.]+" \
  "$TMP/held.err" || fail "run: no live line for window 1 in: $(head -3 "$TMP/held.err")"

# --- too few windows at the target to judge ---
W "${RUN[@]}" --power-budget-w 320 --max-tokens 600 > "$TMP/short.txt" 2> /dev/null || fail "short budget run failed"
first_line "$TMP/short.txt" "^budget 320 W not judged: fewer than 8 full windows at a target" "run, too short"

# --- an infeasible budget: refused before any window, or run with --allow-infeasible and judged NOT held ---
expect_error "--power-budget-w 10 W cannot be held: the sim plant draws at least [0-9.]* W at the cheapest rung" \
  "$BIN" "${RUN[@]}" --power-budget-w 10 --log "$TMP/never.jsonl"
[ -e "$TMP/never.jsonl" ] && fail "an infeasible budget ran windows"
expect_error "--budget-schedule target 10 W cannot be held" "$BIN" "${RUN[@]}" --power-budget-w 300 \
  --budget-schedule 20:10
W "${RUN[@]}" --power-budget-w 10 --allow-infeasible --json > "$TMP/inf.json" 2> "$TMP/inf.err" ||
  fail "--allow-infeasible: $(cat "$TMP/inf.err")"
grep -q "warn.*--power-budget-w 10 W cannot be held" "$TMP/inf.err" || fail "--allow-infeasible: no warning"
python3 - "$TMP/inf.json" <<'PY' || fail "infeasible budget run: not judged NOT held"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["budget"]["held"] is False and s["verdict"].startswith("budget 10 W NOT held: mean "), s["verdict"]
assert s["budget"]["floor"] > 10
PY
expect_error "--energy-budget-j-per-token 1e-09 J/token cannot be held" "$BIN" "${RUN[@]}" --energy-budget-j-per-token 1e-9

# --- run without a budget ---
W "${RUN[@]}" --max-tokens 2000 > "$TMP/free.txt" 2> /dev/null || fail "run without a budget failed"
first_line "$TMP/free.txt" \
  "^bits/byte [0-9.]+ on 2,000 tokens, 2\.00 experts/token, no budget \(simulated: mean [0-9.]+ W, [0-9.e-]+ J/token\)$" \
  "run, no budget"

# --- train ---
W train --preset tiny --steps 2 --eval-every 2 --train "$TMP/text.txt" --val "$TMP/text.txt" --out "$TMP/m" \
  > "$TMP/train.txt" 2> "$TMP/err" || fail "train: $(cat "$TMP/err")"
first_line "$TMP/train.txt" "^trained tiny to step 2: val bits/byte [0-9.]+, train loss [0-9.]+ \(.*\); model in .*/m$" train
W train --preset tiny --steps 2 --eval-every 2 --train "$TMP/text.txt" --val "$TMP/text.txt" --out "$TMP/m2" --json \
  > "$TMP/train.json" 2> /dev/null || fail "train --json failed"
schema "$TMP/train.json" wattmoe.train/1

# --- info ---
W info --model "$MODEL" > "$TMP/info.txt" 2> "$TMP/err" || fail "info: $(cat "$TMP/err")"
first_line "$TMP/info.txt" "^.*kjv-small: mixtral MoE, [0-9.]+M parameters \([0-9.]+M active per token\), 8 experts top-2" info
W info --model "$MODEL" --json > "$TMP/info.json" || fail "info --json failed"
schema "$TMP/info.json" wattmoe.info/1

# --- telemetry: the first line names the sensor (simulated says so); --json only the summary ---
W telemetry --sensor sim --fast --duration 1 > "$TMP/tel.txt" 2> /dev/null || fail "telemetry failed"
first_line "$TMP/tel.txt" "^telemetry: sensor .* -- simulated" telemetry
W telemetry --sensor sim --fast --duration 1 --json > "$TMP/tel.json" 2> /dev/null || fail "telemetry --json failed"
schema "$TMP/tel.json" wattmoe.telemetry/1
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["simulated"] is True and j["samples"] == 11, j' \
  "$TMP/tel.json" || fail "telemetry --json: $(cat "$TMP/tel.json")"

# --- data build ---
W data build --out "$TMP/data" > "$TMP/data.txt" 2> /dev/null || fail "data build failed"
first_line "$TMP/data.txt" "^wrote [0-9]+ files \([0-9.]+ MB\) to .*/data \(manifest.json lists them\)$" "data build"
W data build --out "$TMP/data" --json > "$TMP/data.json" 2> /dev/null || fail "data build --json failed"
schema "$TMP/data.json" wattmoe.data/1

# --- profile: the first line says what is measured and how; --json prints the table written ---
P=(profile --model "$MODEL" --sensor sim --out "$TMP/costs.json" --tokens-per-call 1 --min-window-s 0.05 --repeats 1
   --idle-s 0)
W "${P[@]}" > "$TMP/prof.txt" 2> /dev/null || fail "profile failed"
first_line "$TMP/prof.txt" "^profile: simulated .* -- SIMULATED; [0-9]+ blocks x 1 token counts" profile
W "${P[@]}" --json > "$TMP/prof.json" 2> /dev/null || fail "profile --json failed"
schema "$TMP/prof.json" wattmoe.profile/1
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); j.pop("schema"); j.pop("out"); assert j == json.load(open(sys.argv[2]))' \
  "$TMP/prof.json" "$TMP/costs.json" || fail "profile --json differs from the table written"

# --- negative numbers are refused on every command, naming the flag (they used to mean "all" or wrap around) ---
expect_error "--max-tokens: expected a number >= 0, got '-5'" "$BIN" eval --model "$MODEL" --data "$TMP/text.txt" \
  --max-tokens -5
expect_error "--seed: expected a number >= 0, got '-1'" "$BIN" data build --out "$TMP/never" --seed -1
expect_error "--context: expected a number >= 0, got '-3'" "$BIN" generate --model "$MODEL" --context -3
expect_error "--ttt-every: expected a number >= 0" "$BIN" "${RUN[@]}" --ttt --ttt-every -1
expect_error "--ambient-c -300: expected a temperature in °C above absolute zero" "$BIN" "${RUN[@]}" --ambient-c -300

finish results.sh
