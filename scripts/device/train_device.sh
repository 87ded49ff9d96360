#!/usr/bin/env bash
# Training on the GPU, checked against the CPU and timed against PyTorch (read only: never changes clocks or power
# limits). Under OUT_DIR:
#   1. nvidia-smi -L (the card);
#   1b. the tiny preset trained on the CPU (--shards 1) and on the GPU for 1 and 30 steps: loss, load-balancing loss,
#      gradient norm and final val bpb side by side (same data, init, schedule: they should agree to fp32 rounding
#      amplified by training);
#   2. `wattmoe train --device cuda --preset small` on kjv (the shipped model's full schedule) → small_cuda/, its
#      final validation bits per byte against the CPU reference (docs/results.md's kjv val row, or --cpu-ref):
#      within 1%?
#   3. the GPU-trained checkpoint evaluated by `wattmoe eval` on the CPU and on the GPU (same format: the two must
#      agree closely), and the shipped CPU-trained models/kjv-small evaluated on the GPU (its CPU value is the
#      reference of step 2, so this checks GPU evaluation alone);
#   4. bench/train_vs_torch.py: training tokens/s, ours vs PyTorch eager + transformers, same config/batch/card
#      (shapes from --shape, default medium).
# Then summary.json with every number and logs.tgz with every log.
#
# Usage: scripts/device/train_device.sh [--bin WATTMOE] [--data DIR] [--out DIR] [--cpu-ref BPB] [--steps N]
#                                       [--shape NAME]... [--skip-train] [--skip-bench] [--train-timeout S]
#   --bin: a CUDA build of wattmoe (default build/wattmoe); put the shared libraries it needs on LD_LIBRARY_PATH.
#   --data: holds kjv.train.txt and kjv.val.txt (`wattmoe data build --out DIR` makes them); default data.
#   --out: default $OUT, else out/train_device. --steps N: shorter run (then the 1% check is not meaningful).
#   --train-timeout S: interrupt the small run after S seconds (it checkpoints and reports its last step).
# Needs python3; step 4 needs torch + transformers.
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$SRC/build/wattmoe" DATA="$SRC/data" DIR=${OUT:-$SRC/out/train_device} CPU_REF="" STEPS="" SHAPES=()
SKIP_TRAIN=0 SKIP_BENCH=0 TRAIN_TIMEOUT=0
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --out) DIR=$2; shift 2 ;;
    --cpu-ref) CPU_REF=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --shape) SHAPES+=("--shape" "$2"); shift 2 ;;
    --skip-train) SKIP_TRAIN=1; shift ;;
    --train-timeout) TRAIN_TIMEOUT=$2; shift 2 ;;
    --skip-bench) SKIP_BENCH=1; shift ;;
    *) echo "train_device.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#SHAPES[@]} -eq 0 ] && SHAPES=("--shape" "medium")
mkdir -p "$DIR" && DIR=$(cd "$DIR" && pwd)
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
LOG="$DIR/train_device.log"
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
now() { date +%s.%N; }
TIMES=()
step() {  # step NAME LOGFILE command...: runs it (stdout to LOGFILE.out, stderr to LOGFILE.err), records its time
  local name=$1 f=$2; shift 2
  local t0 rc dt
  t0=$(now)
  say "=== $name: $*"
  "$@" > "$DIR/$f.out" 2> "$DIR/$f.err"
  rc=$?
  dt=$(python3 -c "print(f'{$(now) - $t0:.1f}')")
  TIMES+=("$name ${dt}s rc=$rc")
  say "=== $name: ${dt} s, exit $rc"
  [ $rc -eq 0 ] || tail -5 "$DIR/$f.err" | tee -a "$LOG"
  return $rc
}

nvidia-smi -L > "$DIR/card.txt" 2>&1; say "card: $(head -1 "$DIR/card.txt")"
if [ -z "$CPU_REF" ]; then  # docs/results.md: "| kjv val | **1.874** | 177,091 |"
  CPU_REF=$(sed -n 's/^| kjv val | \*\*\([0-9.]*\)\*\* |.*/\1/p' "$SRC/docs/results.md" | head -1)
fi
say "CPU reference (small preset, kjv val bits/byte): ${CPU_REF:-none}"

if [ $SKIP_TRAIN -eq 0 ]; then
  # Same run on both devices, one CPU shard (the GPU runs the micro-batch whole): tiny preset, 1 step (forward,
  # NLL + load-balancing loss, backward: loss and gradient norm before any update) and 30 steps (+ clipping, AdamW).
  for n in 1 30; do
    for dev in cpu cuda; do
      rm -rf "$DIR/tiny_${dev}_$n"
      step "tiny_${dev}_$n" "tiny_${dev}_$n" "$BIN" train --device $dev --shards 1 --preset tiny --steps $n \
        --train "$DATA/kjv.train.txt" --val "$DATA/kjv.val.txt" --out "$DIR/tiny_${dev}_$n" --no-resume --json
      cp "$DIR/tiny_${dev}_$n/metrics.jsonl" "$DIR/tiny_${dev}_${n}_metrics.jsonl" 2>/dev/null
    done
  done
  rm -rf "$DIR/small_cuda"
  TO=()  # SIGINT after the limit: the trainer finishes its step, writes a checkpoint and reports where it stopped
  [ "$TRAIN_TIMEOUT" != 0 ] && TO=(timeout -s INT "$TRAIN_TIMEOUT")
  step train_small_cuda train_small_cuda "${TO[@]}" "$BIN" train --device cuda --preset small ${STEPS:+--steps $STEPS} \
    --train "$DATA/kjv.train.txt" --val "$DATA/kjv.val.txt" --out "$DIR/small_cuda" --no-resume --json
  step eval_cpu_of_gpu_model eval_cpu_of_gpu_model "$BIN" eval --device cpu --model "$DIR/small_cuda" \
    --data "$DATA/kjv.val.txt" --json
  step eval_gpu_of_gpu_model eval_gpu_of_gpu_model "$BIN" eval --device cuda --model "$DIR/small_cuda" \
    --data "$DATA/kjv.val.txt" --json
  step eval_gpu_of_shipped eval_gpu_of_shipped "$BIN" eval --device cuda --model "$SRC/models/kjv-small" \
    --data "$DATA/kjv.val.txt" --json
  cp "$DIR/small_cuda/metrics.jsonl" "$DIR/small_cuda_metrics.jsonl" 2>/dev/null
fi
if [ $SKIP_BENCH -eq 0 ]; then
  step bench train_vs_torch python3 "$SRC/bench/train_vs_torch.py" --bin "$BIN" "${SHAPES[@]}" \
    --train "$DATA/kjv.train.txt" --val "$DATA/kjv.val.txt" --json "$DIR/train_vs_torch.json"
  cat "$DIR/train_vs_torch.out" | tee -a "$LOG"
fi

python3 - "$DIR" "${CPU_REF:-nan}" "${TIMES[@]}" <<'PY' | tee -a "$LOG"
import json, math, os, sys
d, ref, times = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
def js(name):
    try:
        txt = open(os.path.join(d, name + ".out")).read().strip()
        return json.loads(txt[txt.index("{"):]) if "{" in txt else None
    except (OSError, ValueError):
        return None
s = {"card": open(os.path.join(d, "card.txt")).read().strip(), "cpu_ref_val_bpb": ref, "times": times}
t = js("train_small_cuda")
if t:
    s["train_small_cuda"] = t
    g = t["final_val_bpb"]
    s["gpu_vs_cpu_rel"] = (g - ref) / ref if ref == ref else None
    s["within_1pct"] = abs(g - ref) <= 0.01 * ref if ref == ref else None
def metrics(name):
    try:
        return [json.loads(l) for l in open(os.path.join(d, name + "_metrics.jsonl"))]
    except (OSError, ValueError):
        return []
for n in (1, 30):  # tiny preset on both devices: per logged step, relative differences GPU vs CPU
    c, g = metrics(f"tiny_cpu_{n}"), metrics(f"tiny_cuda_{n}")
    rows = []
    for x, y in zip(c, g):
        if x.get("step") != y.get("step"):
            continue
        for key in ("loss", "lb_loss", "grad_norm", "val_bpb"):
            if key in x and key in y:
                rows.append({"step": x["step"], "what": key, "cpu": x[key], "cuda": y[key],
                             "rel": (y[key] - x[key]) / x[key] if x[key] else None})
    if rows:
        s[f"tiny_{n}_steps_gpu_vs_cpu"] = rows
for k in ("eval_cpu_of_gpu_model", "eval_gpu_of_gpu_model", "eval_gpu_of_shipped"):
    e = js(k)
    if e:
        s[k] = {x: e[x] for x in ("bits_per_byte", "tokens", "seconds", "tokens_per_s", "experts_per_token")}
a, b = s.get("eval_cpu_of_gpu_model"), s.get("eval_gpu_of_gpu_model")
if a and b:
    s["eval_gpu_vs_cpu_same_model_rel"] = (b["bits_per_byte"] - a["bits_per_byte"]) / a["bits_per_byte"]
try:
    s["train_vs_torch"] = json.load(open(os.path.join(d, "train_vs_torch.json")))
except (OSError, ValueError):
    pass
json.dump(s, open(os.path.join(d, "summary.json"), "w"), indent=2)
print(json.dumps({k: v for k, v in s.items() if k != "train_vs_torch"}, indent=1))
for r in s.get("train_vs_torch", {}).get("rows", []):
    print(f"{r['shape']}: wattmoe {r['wattmoe']['tokens_per_s']:.0f} tok/s, PyTorch {r['torch']['tokens_per_s']:.0f} "
          f"tok/s, ratio {r['ratio']:.2f}")
PY
(cd "$DIR" && tar czf logs.tgz --exclude=logs.tgz *.out *.err *.log *.txt *.jsonl 2>/dev/null)
say "done: $DIR/summary.json, $DIR/logs.tgz"
