#!/usr/bin/env bash
# `wattmoe run --plant`: sim (the default) logs simulated power under sim_* keys, the same with and without the flag;
# cuda with no usable GPU fails at once with one clear error line and a non-zero exit (never a signal, never an
# internal check), whether this wattmoe was built without CUDA or with it (CI builds with nvcc but has no GPU;
# CUDA_VISIBLE_DEVICES="" hides any GPU, so the test means the same on a machine that has one), and writes no log;
# an unknown plant is an error too.
# Usage: bash run_plant.sh <path-to-wattmoe> <source-dir>. Needs python3's standard library.
set -u
BIN=${1:?usage: run_plant.sh <wattmoe> <source-dir>}
SRC=${2:?usage: run_plant.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_run_plant.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
# shellcheck source=lib/expect_error.sh
. "$(dirname "$0")/lib/expect_error.sh"

python3 - "$TMP" <<'PY'
import sys, random
r = random.Random(3)
words = "and the lord said unto moses that he should go up into the mount of god and speak unto the people".split()
open(sys.argv[1] + "/text.txt", "w").write(" ".join(r.choice(words) for _ in range(800)) + "\n")
PY
BUDGET=(--expert-shape 4096x14336 --power-budget-w 320 --budget-schedule 10:290)

# 1. --plant sim is the default: identical logs (but for timings) with and without the flag.
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" "${BUDGET[@]}" --summary "$TMP/a.json" --log "$TMP/a.jsonl" \
  2>/dev/null || fail "default run failed"
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" "${BUDGET[@]}" --plant sim --summary "$TMP/b.json" \
  --log "$TMP/b.jsonl" 2>/dev/null || fail "--plant sim run failed"
python3 - "$TMP" <<'PY' || fail "--plant sim differs from the default or lacks the simulated fields"
import json, sys
d = sys.argv[1]
a = [json.loads(l) for l in open(d + "/a.jsonl")]
b = [json.loads(l) for l in open(d + "/b.jsonl")]
assert len(a) == len(b) > 20, (len(a), len(b))
for x, y in zip(a, b):
    for r in (x, y):
        r.pop("infer_s"), r.pop("adapt_s")
    assert x == y
    assert x["sim_power_w"] > 0 and x["sim_step_j"] > 0 and abs(x["sim_step_s"] - 0.02) < 1e-9 and "power_w" in x["sim"]
    assert not any(k.startswith("measured") for k in x), x.keys()
sa, sb = json.load(open(d + "/a.json")), json.load(open(d + "/b.json"))
# The summary's keys are the same for every plant: "plant", and "measured" false for the simulated GPU.
assert sa["plant"] == sb["plant"] and sa["plant"]["label"] == "simulated GPU (not measured)" and "sim" not in sa
assert sa["measured"] is False and sa["plant"]["measured"] is False and sa["schema"] == "wattmoe.run/1", sa
assert sa["plant"]["step_period_s"] == 0.02 and sa["plant"]["overrun_windows"] == 0, sa["plant"]
# The budget still acts on the simulated power: top-2 starts near 390 W, the tail holds 290 W.
assert a[0]["sim_power_w"] > 360 and abs(sum(r["sim_power_w"] for r in a[20:-1]) / len(a[20:-1]) - 290) < 0.05 * 290
PY

# 1b. The simulated plant charges test-time adaptation inside the step: a TTT run's windows carry sim_adapt_j > 0
# (above idle: the step without it costs sim_step_j - sim_adapt_j), summed in the summary's plant.adapt_joules; a run
# without TTT charges nothing.
"$BIN" run --model "$MODEL" --data "$TMP/text.txt" --max-tokens 1024 --ttt --summary "$TMP/t.json" \
  --log "$TMP/t.jsonl" 2>/dev/null || fail "TTT run on the simulated plant failed"
python3 - "$TMP" <<'PY' || fail "the simulated plant does not charge adaptation as documented"
import json, sys
d = sys.argv[1]
t = [json.loads(l) for l in open(d + "/t.jsonl")]
s, a = json.load(open(d + "/t.json")), json.load(open(d + "/a.json"))
assert all(w["sim_adapt_j"] > 0 and w["sim_adapt_s"] > 0 and w["sim_adapt_j"] < w["sim_step_j"] for w in t if w["adapted"])
assert abs(s["plant"]["adapt_joules"] - sum(w["sim_adapt_j"] for w in t)) < 1e-9 * s["plant"]["joules"], s["plant"]
assert a["plant"]["adapt_joules"] == 0, a["plant"]
PY

# 2. --plant cuda without a GPU (or without CUDA in the build): a clear error before any work (no log written).
rm -f "$TMP/c.jsonl"
expect_error "--plant cuda: .*\(no CUDA device is visible\|built without CUDA\)" \
  "$BIN" run --model "$MODEL" --data "$TMP/text.txt" "${BUDGET[@]}" --plant cuda --log "$TMP/c.jsonl"
[ -e "$TMP/c.jsonl" ] && fail "--plant cuda wrote a log before failing"
expect_error "--plant cuda" "$BIN" run --model "$MODEL" --data "$TMP/text.txt" --plant cuda --step-period-s 0.5
# --plant model without a GPU: the same (the device, then the plant); with --device cpu: it needs the model on the GPU.
expect_error "\(no CUDA device is visible\|built without CUDA\)" \
  "$BIN" run --model "$MODEL" --data "$TMP/text.txt" "${BUDGET[@]}" --plant model --device cuda
# 3. An unknown plant.
expect_error "--plant gpu: expected sim, cuda or model" "$BIN" run --model "$MODEL" --data "$TMP/text.txt" --plant gpu

finish run_plant.sh
