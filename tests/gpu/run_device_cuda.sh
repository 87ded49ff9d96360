#!/usr/bin/env bash
# `wattmoe run --device cuda` against `wattmoe run --device cpu` (needs a GPU: ctest test gpu.run_device_cuda, label
# gpu; reads data/kjv.val.txt, which `wattmoe data build` makes). Same model, text and flags; checks: the summary's
# "device", tokens, windows, bytes equal; bits/byte within 1e-5 relative; the run's expert counts (whole run, first
# and last windows) equal; per window: the same expert counts and, under a power budget, the same controller
# decisions (the plant is fed the counts, so equal counts must give equal decisions). Two runs: the model's own
# routing, and --power-budget-w 300 on the simulated plant (the controller moves the knob window by window).
# Tolerance: fp32 on both sides, only summation order differs (see tests/gpu/stream_cuda_test.cpp).
# Usage: bash run_device_cuda.sh <wattmoe> <source-dir> <text> [max-tokens (default 4000)]
set -u
BIN=${1:?usage: run_device_cuda.sh <wattmoe> <source-dir> <text> [max-tokens]}
SRC=${2:?usage}
DATA=${3:?usage}
MAXTOK=${4:-4000}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_run_cuda.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

for mode in static budget; do
  extra=""
  [ "$mode" = budget ] && extra="--power-budget-w 300"
  for dev in cpu cuda; do
    # shellcheck disable=SC2086
    "$BIN" run --model "$MODEL" --data "$DATA" --max-tokens "$MAXTOK" --device $dev $extra \
      --summary "$TMP/$mode.$dev.json" --log "$TMP/$mode.$dev.jsonl" 2> "$TMP/$mode.$dev.err" ||
      fail "$mode --device $dev: $(tail -3 "$TMP/$mode.$dev.err")"
  done
  python3 - "$TMP" "$mode" <<'PY' || fail "$mode: cuda differs from cpu"
import json, sys
d, mode = sys.argv[1], sys.argv[2]
c, g = (json.load(open(f"{d}/{mode}.{x}.json")) for x in ("cpu", "cuda"))
assert c["device"] == "cpu" and g["device"] == "cuda", (c["device"], g["device"])
for k in ("tokens", "windows", "bytes", "expert_counts", "expert_counts_first", "expert_counts_last"):
    assert c[k] == g[k], (k, c[k], g[k])
rel = abs(g["bits_per_byte"] - c["bits_per_byte"]) / c["bits_per_byte"]
assert rel <= 1e-5, (c["bits_per_byte"], g["bits_per_byte"], rel)
rc = [json.loads(l) for l in open(f"{d}/{mode}.cpu.jsonl")]
rg = [json.loads(l) for l in open(f"{d}/{mode}.cuda.jsonl")]
assert len(rc) == len(rg) == c["windows"]
worst = 0.0
for a, b in zip(rc, rg):
    assert a["expert_counts"] == b["expert_counts"], ("window", a["window"])
    assert a.get("control") == b.get("control"), ("window", a["window"], a.get("control"), b.get("control"))
    worst = max(worst, abs(a["nats"] - b["nats"]) / max(abs(a["nats"]), 1e-30))
assert worst <= 1e-5, worst
print(f"{mode}: tokens {c['tokens']} windows {c['windows']} bpb cpu {c['bits_per_byte']:.9f} cuda "
      f"{g['bits_per_byte']:.9f} rel {rel:.2e}; worst window nats rel {worst:.2e}; infer s cpu "
      f"{c['infer_seconds']:.3f} cuda {g['infer_seconds']:.3f}; experts/token {c['experts_per_token']:.4f} "
      f"{g['experts_per_token']:.4f}")
PY
done

if [ $failures -ne 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi
echo "run_device_cuda: all checks passed"
