#!/usr/bin/env bash
# Issue 21 through the CLI: inputs that crashed, hung, answered wrongly with exit 0 or lost data now get a clean
# refusal (exit 1..127, one "wattmoe: error:" line naming the file/field/flag) or a clean stop. docs/hardening.md has
# the table of bad-input classes and what each gets; every row is checked here or in a unit test it names.
# Usage: bash hardening.sh <path-to-wattmoe> <source-dir>. Needs bash, coreutils, timeout and python3's stdlib.
set -u
BIN=${1:?usage: hardening.sh <wattmoe> <source-dir>}
SRC=${2:?usage: hardening.sh <wattmoe> <source-dir>}
FIX="$SRC/tests/fixtures/mixtral_gqa"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_hardening.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
. "$SRC/tests/cli/lib/expect_error.sh"

# Every command runs under a time limit: a hang is a failure, not a stuck CI.
W() { timeout -s KILL 60 "$BIN" "$@"; }

# A fresh copy of the fixture's model (config.json + model.safetensors) in $TMP/$1.
model_copy() {
  mkdir -p "$TMP/$1"
  cp "$FIX/config.json" "$FIX/model.safetensors" "$TMP/$1/"
  echo "$TMP/$1"
}
python3 -c 'import random; r = random.Random(3); print(" ".join(r.choice("abc de fg hij".split()) for _ in range(3000)))' \
  > "$TMP/text.txt"

# --- crashes: a tokenizer.json nested 10,000 deep (stack overflow before), as --tokenizer and inside --model DIR ---
python3 - "$SRC/tests/fixtures/tokenizers/bytelevel_qwen2.json" "$TMP/deep.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
g.pop("pre_tokenizer", None)
leaf = '{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}'
nested = '{"type":"Sequence","pretokenizers":[' * 10000 + leaf + "]}" * 10000
t = json.dumps(g)
open(sys.argv[2], "w").write(t[0] + '"pre_tokenizer":' + nested + "," + t[1:])
PY
expect_error "deep.json: JSON nested more than 128 levels" W eval --model "$FIX" --tokenizer "$TMP/deep.json" \
  --data "$TMP/text.txt"
d=$(model_copy deep_tok)
cp "$TMP/deep.json" "$d/tokenizer.json"
expect_error "tokenizer.json: JSON nested more than 128 levels" W eval --model "$d" --data "$TMP/text.txt"

# --- hangs: the simulated GPU stepped once per counter tick without bound ---
RUN=(run --model "$SRC/models/kjv-small" --data "$TMP/text.txt" --max-tokens 300 --seq 32)
expect_error "--step-period-s 1e+308: expected seconds in (0, 3600]" W "${RUN[@]}" --step-period-s 1e308
expect_error "--sim-streams 1e+15: expected a number of streams in \[1, 1e+09\]" W "${RUN[@]}" --sim-streams 1e15
echo '{"counter_tick_s": 1e-6}' > "$TMP/tick.json"
start=$(date +%s)
W "${RUN[@]}" --sim-params "$TMP/tick.json" --sim-streams 1e9 --step-period-s 3600 > "$TMP/out.json" 2>"$TMP/err" ||
  fail "1e-6 s counter tick, 1e9 streams, 1 h period: rc=$? $(cat "$TMP/err")"
[ $(( $(date +%s) - start )) -le 20 ] || fail "1e-6 s counter tick: took more than 20 s"
expect_error "--expert-shape: '99999999999x1' is not HxI with integers in \[1, 1048576\]" W "${RUN[@]}" \
  --expert-shape 99999999999x1
echo '{"counter_tick_s": 1e-9}' > "$TMP/tick9.json"
expect_error "counter_tick_s: expected a tick of at least 1e-6 s" W "${RUN[@]}" --sim-params "$TMP/tick9.json"

# --- hangs and silent wrong answers: NaN or inf in a number flag (telemetry --duration nan ran forever) ---
expect_error "--duration: expected a number, got 'nan'" W telemetry --sensor sim --fast --duration nan
expect_error "--duration: expected a number, got '-nan'" W telemetry --sensor sim --fast --duration -nan
expect_error "--route-top-p: expected a finite number, got 'inf'" W eval --model "$FIX" --data "$TMP/text.txt" --route-top-p inf
expect_error "--power-budget-w: expected a finite number, got '1e999'" W "${RUN[@]}" --power-budget-w 1e999
expect_error "--ttt-lr: expected a number, got 'NaN'" W "${RUN[@]}" --ttt --ttt-lr NaN
W eval --model "$SRC/models/kjv-small" --data "$TMP/text.txt" --max-tokens 200 --policy budget --budget-j inf \
  > /dev/null 2>"$TMP/err" || fail "--budget-j inf (no limit) was refused: $(cat "$TMP/err")"

# --- hangs: a FIFO where a file is expected (open(2) blocked forever without a writer) ---
d=$(model_copy fifo_config)
rm "$d/config.json"
mkfifo "$d/config.json"
expect_error "config.json: not a regular file (a FIFO)" W info --model "$d"
d=$(model_copy fifo_weights)
rm "$d/model.safetensors"
mkfifo "$d/model.safetensors"
expect_error "model.safetensors: not a regular file (a FIFO)" W info --model "$d"
mkfifo "$TMP/fifo.txt" "$TMP/fifo.jsonl"
expect_error "fifo.txt: not a regular file (a FIFO)" W eval --data "$TMP/fifo.txt"
expect_error "fifo.jsonl: not a regular file (a FIFO)" W telemetry --replay "$TMP/fifo.jsonl"
expect_error "fifo.txt: not a regular file (a FIFO)" W eval --tokenizer "$TMP/fifo.txt" --data "$TMP/text.txt"

# --- silent wrong answers: finite weights that overflow gave "bits_per_byte": null and an empty generation ---
mkdir -p "$TMP/huge"
cp "$SRC/models/kjv-small/config.json" "$TMP/huge/"
python3 - "$SRC/models/kjv-small/model.safetensors" "$TMP/huge/model.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
lo, hi = h["lm_head.weight"]["data_offsets"]
assert h["lm_head.weight"]["dtype"] == "F32"
b[8 + n + lo:8 + n + hi] = struct.pack("<f", 3e38) * ((hi - lo) // 4)
open(sys.argv[2], "wb").write(bytes(b))
PY
expect_error "the model's loss is not finite" W eval --model "$TMP/huge" --data "$TMP/text.txt" --max-tokens 500
expect_error "the model's loss is not finite" W run --model "$TMP/huge" --data "$TMP/text.txt" --max-tokens 500
expect_error "the model's logits are not finite" W generate --model "$TMP/huge" --max-new-tokens 5

# --- silent wrong answers: train took <= 0 (and NaN) for steps, batch, seq, lr as "use the preset" ---
# (a negative number is refused for every numeric flag while the flags are parsed: cli/common_flags.h)
T=(train --preset tiny --train "$TMP/text.txt" --val "$TMP/text.txt" --out "$TMP/never")
expect_error "--steps 0: expected a number >= 1" W "${T[@]}" --steps 0
expect_error "--steps: expected a number >= 0, got '-5'" W "${T[@]}" --steps -5
expect_error "--batch 0: expected a number >= 1" W "${T[@]}" --batch 0
expect_error "--seq 1: expected a number >= 2" W "${T[@]}" --seq 1
expect_error "--accum: expected a number >= 0, got '-1'" W "${T[@]}" --accum -1
expect_error "--eval-every 0: expected a number >= 1" W "${T[@]}" --eval-every 0
expect_error "--lr 0: expected a learning rate > 0" W "${T[@]}" --lr 0
expect_error "--lr: expected a number >= 0, got '-0.001'" W "${T[@]}" --lr -0.001
expect_error "--lr: expected a number, got 'nan'" W "${T[@]}" --lr nan
expect_error "--lb-coef: expected a number >= 0, got '-1'" W "${T[@]}" --lb-coef -1
[ -e "$TMP/never" ] && fail "a refused train created its --out"

# --- silent wrong answers: a wrapped energy counter in a replayed trace printed negative joules ---
printf '%s\n' '{"time_s":0,"energy_j":1000}' '{"time_s":1,"energy_j":1010}' '{"time_s":2,"energy_j":5}' \
  '{"time_s":3,"energy_j":15}' > "$TMP/wrap.jsonl"
W telemetry --replay "$TMP/wrap.jsonl" > "$TMP/out" 2> "$TMP/err" || fail "replay of a wrapped counter: rc=$?"
grep -q "energy counter +20.000 J" "$TMP/out" || fail "wrapped counter total: $(tail -1 "$TMP/out")"
grep -q "went backwards 1 time" "$TMP/out" || fail "wrapped counter not reported: $(tail -1 "$TMP/out")"
grep -q -- "-[0-9.]* J" "$TMP/out" && fail "negative joules: $(tail -1 "$TMP/out")"

# --- lost data: an interrupted training exited 0; a run stopped by SIGINT/SIGTERM left a cut-off log and no summary ---
# wait_for FILE LINES: until FILE has LINES lines (at most 60 s).
wait_for() { for _ in $(seq 600); do [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0; sleep 0.1; done; return 1; }
for sig in INT TERM; do
  want=$([ $sig = INT ] && echo 130 || echo 143)
  out="$TMP/train_$sig"
  timeout -s KILL 120 "$BIN" train --preset tiny --steps 100000 --eval-every 100000 --train "$TMP/text.txt" \
    --val "$TMP/text.txt" --out "$out" --json > "$TMP/train_$sig.json" 2> "$TMP/err" &
  pid=$!
  wait_for "$out/metrics.jsonl" 2 || fail "train ($sig): no metrics after 60 s"
  kill -$sig $pid
  wait $pid
  rc=$?
  [ $rc -eq $want ] || fail "train stopped by SIG$sig: exit $rc, want $want"
  [ -f "$out/checkpoint/trainer_state.json" ] || fail "train stopped by SIG$sig: no checkpoint"
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["interrupted"] == sys.argv[2], j' \
    "$TMP/train_$sig.json" "SIG$sig" || fail "train stopped by SIG$sig: summary lacks interrupted=SIG$sig"

  timeout -s KILL 120 "$BIN" run --data "$SRC/README.md" --seq 16 --log "$TMP/run_$sig.jsonl" \
    --summary "$TMP/run_$sig.json" 2> "$TMP/err" &
  pid=$!
  wait_for "$TMP/run_$sig.jsonl" 3 || fail "run ($sig): no log lines after 60 s"
  kill -$sig $pid
  wait $pid
  rc=$?
  [ $rc -eq $want ] || fail "run stopped by SIG$sig: exit $rc, want $want"
  python3 - "$TMP/run_$sig.jsonl" "$TMP/run_$sig.json" "SIG$sig" <<'PY' || fail "run stopped by SIG$sig: log or summary"
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "the log does not end with a complete line"
windows = [json.loads(l) for l in lines[:-1]]
s = json.load(open(sys.argv[2]))
assert s["interrupted"] == sys.argv[3], s.get("interrupted")
assert s["windows"] == len(windows), (s["windows"], len(windows))
PY
done

# --- lost data: an output replaced whatever its path was (a FIFO, a device) or one of the run's inputs ---
SMALL=(run --model "$SRC/models/kjv-small" --data "$TMP/text.txt" --max-tokens 100 --seq 32)
mkfifo "$TMP/out.fifo"
expect_error "out.fifo: will not write over a FIFO; name a regular file" W "${SMALL[@]}" --summary "$TMP/out.fifo"
[ -p "$TMP/out.fifo" ] || fail "--summary replaced a FIFO"
expect_error "out.fifo: will not write over a FIFO; name a regular file" W "${SMALL[@]}" --log "$TMP/out.fifo"
expect_error "out.fifo: will not write over a FIFO" W telemetry --sensor sim --fast --duration 1 --record "$TMP/out.fifo"
# A symbolic link is written through: the file it points at gets the output, the link stays a link.
echo old > "$TMP/real.json"
ln -s real.json "$TMP/link.json"
W "${SMALL[@]}" --summary "$TMP/link.json" > /dev/null 2> "$TMP/err" || fail "--summary LINK: $(cat "$TMP/err")"
[ -L "$TMP/link.json" ] || fail "--summary replaced the symbolic link"
grep -q '"windows"' "$TMP/real.json" || fail "--summary LINK did not write the link's target"
# An output that is an input (however named) is refused and the input kept.
cp "$TMP/wrap.jsonl" "$TMP/trace.jsonl"
expect_error "--record .*trace.jsonl: is also --replay" W telemetry --replay "$TMP/trace.jsonl" --record "$TMP/./trace.jsonl"
cmp -s "$TMP/wrap.jsonl" "$TMP/trace.jsonl" || fail "--record = --replay changed the trace"
cp "$TMP/text.txt" "$TMP/data.txt"
ln -s data.txt "$TMP/data_link.txt"
expect_error "--log .*data_link.txt: is also --data" W run --model "$SRC/models/kjv-small" --data "$TMP/data.txt" \
  --max-tokens 100 --log "$TMP/data_link.txt"
expect_error "--summary .*data.txt: is also --data" W run --model "$SRC/models/kjv-small" --data "$TMP/data.txt" \
  --max-tokens 100 --summary "$TMP/data.txt"
cmp -s "$TMP/text.txt" "$TMP/data.txt" || fail "--log/--summary = --data changed the data"

# --- sensor faults: a sensor that fails mid-run (injected into the simulated GPU) stops the run cleanly: complete log
# lines for the windows measured, a summary saying why, exit 1 ---
echo '{"sensor_fails_after_s": 0.05}' > "$TMP/fault.json"
expect_error "run stopped: simulated GPU: the sensor failed at" W "${SMALL[@]}" --sim-params "$TMP/fault.json" \
  --log "$TMP/fault.jsonl" --summary "$TMP/fault_summary.json"
python3 - "$TMP/fault.jsonl" "$TMP/fault_summary.json" <<'PY' || fail "sensor fault: log or summary"
import json, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "the log does not end with a complete line"
windows = [json.loads(l) for l in text.splitlines()]
s = json.load(open(sys.argv[2]))
assert "the sensor failed" in s["stopped"], s.get("stopped")
assert s["plant"]["windows"] == len(windows) >= 2, (s["plant"]["windows"], len(windows))
PY

# --- lost data: a write error on stdout still exited 0 ---
# (expect_error sends stdout to a file of its own, so these check by hand.)
for cmd in "info --model $FIX" "eval --model $SRC/models/kjv-small --data $TMP/text.txt --max-tokens 50"; do
  W $cmd > /dev/full 2> "$TMP/err"; rc=$?
  { [ $rc -ge 1 ] && [ $rc -lt 128 ] && grep -q "^wattmoe: error: stdout: write failed" "$TMP/err"; } ||
    fail "$cmd > /dev/full: rc=$rc $(cat "$TMP/err")"
done

finish hardening
