#!/usr/bin/env bash
# One device call's work, in phases, from binaries built on the CPU machine and carried as one archive (see
# scripts/device/pack_session.sh): `scripts/device/session.sh PHASE...`. Read only on the GPU: never changes clocks or
# power limits. Each phase logs to $SESSION/PHASE.log (default /tmp/wm-session, outside $OUT: the device returns at
# most 8 files) and prints one line; at the end $SESSION is packed into $OUT/session.tgz, summary.txt copied beside it.
# Phases:
#   tests       every GPU test (ctest label gpu: the test binary, run_device_cuda.sh, run_ttt_cuda.sh)
#   hashes      scripts/dev/output_hashes.sh with the pre-change binary and this one: fp32 and bf16 host routing must
#               be bit-identical; bf16 on the fused kernels is listed (its policies moved onto the device)
#   layerbench  the fused MoE layer, plain top-k, this build against the pre-change one (T 1, 8, 64, 4096), and the
#               policies at T 64 and 4096
#   train       the medium preset on the GPU (scripts/device/train_medium.sh, TRAIN_S seconds) into /tmp/wm-medium
#   mix         the medium preset on the mix corpus's training domains with its BPE tokenizer (carried as
#               .devcarry/mix.tar.xz by scripts/device/pack_mix.sh; TRAIN_S seconds) into $MIXMODEL, then bits/byte of
#               every domain's test split (bf16, fused kernels): the in-domain score and the natural shifts' gaps
#   mixtorch    scripts/experiments/torch_reference.py --preset medium on the same corpus and tokenizer (PyTorch +
#               transformers, fp32, the preset's 3000 steps; about 300 s on an H100): the independent reference beside
#               the mix phase's model, bits/byte on prose val and every domain's test split
#   servetier   `wattmoe serve --ladder-tier fp8` under a stepped power budget at 8 streams (decode steps of 8
#               tokens, which read the fp8 codes once the ladder reaches its tier level): a wide model
#               (scripts/device/wide_random.json: 4 layers of H 2048, 8 experts of I 8192; 20 steps on kjv, so near
#               its init: energy only) into /tmp/wm-wide, then bench/serve_bench.py's budget step (SERVE_ARGS: more)
#   quantbench  the fused MoE layer (Mixtral shape) at T 1 and 8 with bf16, fp8 and int8 experts on the same inputs:
#               time, weight GB/s and NVML J/token, and their ratios to bf16 (moe_layer_bench --expert-precision)
#   quant       bits/byte of the mix model ($MIXMODEL, else /tmp/wm-medium) on its validation text with the routed
#               experts in bf16, fp8 and int8 (--expert-precision; GPU, bf16, fused kernels)
#   attnbench   bench/attention_bench: causal attention forward, materialised against flash, the medium shape (8 heads
#               of 64) and the Mixtral shape (32 heads of 128, 8 KV heads) at T 128 .. 4096
#   energy      scripts/device/energy_policies.sh (kjv-small, /tmp/wm-medium when present, the random Mixtral shape)
#   budget      scripts/device/control_real.sh --plant model on /tmp/wm-medium (else kjv-small)
#   ttt         scripts/device/ttt_energy.sh on kjv-small and /tmp/wm-medium (10 windows; 16,384 / 2,048 streams)
#   tttseeds    scripts/device/ttt_energy.sh on /tmp/wm-medium (else kjv-small) with LoRA seeds 1, 2, 3 (TTT_SEEDS):
#               the spread of the measured TTT result over seeds and runs
#   ttttime     scripts/device/ttt_time.sh on kjv-small and /tmp/wm-medium: adaptation vs inference ms per window and
#               where adaptation's time goes (TTT_TIME_ARGS: more `wattmoe run` flags for every run); with a packed
#               base build (pack_session.sh --base) this build, the base and this build again (names -new, -base,
#               -new2: the records of docs/figures/ttt_time.png)
#   tttkernels  scripts/device/ttt_kernels.sh on kjv-small and /tmp/wm-medium: the GPU kernels' own time per window
#               without and with TTT (Nsight Compute), beside ttttime's wall clock
#   tttref      the TTT recipe's bits/byte (ttt_time.sh's stream, 40 windows) in fp32 on host routing (the CPU's
#               within 1e-7: run_ttt_cuda.sh) against bf16 on the fused kernels, on kjv-small and /tmp/wm-medium
#   slots       bench/energy_policies on random weights of the medium shape (scripts/device/medium_random.json):
#               continuous batching's decode step, slots<N> (one forward_slots) against slots<N>-serial (N forwards,
#               how serving ran before) and the lockstep decode<N>, for top-2 and skip β 0.5, measured by NVML
#               (SLOT_MODES overrides the modes)
#   serve       bench/serve_bench.py: `wattmoe serve` on /tmp/wm-medium (else kjv-small), bf16: tokens/s and measured
#               J/token at 1/8/32/128 streams for top-2 and skip β=0.5, the requests' energy_j against the NVML
#               counter, a power-budget step under load (about 5 minutes; SERVE_ARGS: more serve_bench.py flags)
# Environment: TRAIN_S (default 270), WM (unpacked binaries, default /tmp/wm), MEDIUM (default /tmp/wm-medium),
# SESSION (logs, default /tmp/wm-session), GTEST_FILTER (the test binary's own: a subset of the GPU tests),
# TEST_SCRIPTS=0 (tests: the test binary only), ENERGY_MODELS (energy: energy_policies.sh --models),
# ENERGY_BUDGET_S (energy: --budget-s), BUDGET_SPAN (budget: control_real.sh --span, default idle), BUDGET_WINDOWS
# (budget: --windows, default 60), SERVE_ARGS (serve: more bench/serve_bench.py flags), SERVE_TTT_FLAGS (serve: its
# --ttt-flags, which hold spaces).
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WM=${WM:-/tmp/wm} MEDIUM=${MEDIUM:-/tmp/wm-medium} TRAIN_S=${TRAIN_S:-270} MIXMODEL=${MIXMODEL:-/tmp/wm-mix}
OUTD=${SESSION:-/tmp/wm-session} RESULT=${OUT:-$SRC/out}
mkdir -p "$OUTD" "$RESULT"
if [ ! -x "$WM/wattmoe" ]; then
  mkdir -p "$WM" && tar xJf "$SRC/.devcarry/session.tar.xz" -C "$WM" || { echo "cannot unpack the session archive"; exit 2; }
fi
export LD_LIBRARY_PATH="$WM/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$WM:$PATH"
DATA=$WM/data
t0=$SECONDS
SUMMARY="$OUTD/summary.txt"
note() { echo "[$((SECONDS - t0))s] $*" | tee -a "$SUMMARY"; }
nvidia-smi -L > "$OUTD/card.txt" 2>&1
nvidia-smi --query-gpu=name,power.limit,power.draw,temperature.gpu,clocks.sm --format=csv >> "$OUTD/card.txt" 2>&1
note "card: $(head -1 "$OUTD/card.txt")"

phase_tests() {
  local rc=0
  timeout 330 "$WM/wattmoe_gpu_tests" > "$OUTD/gpu_tests.log" 2>&1 || rc=$?
  note "gpu tests: rc $rc; $(grep -E '^\[  (PASSED|FAILED)  \]' "$OUTD/gpu_tests.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]' "$OUTD/gpu_tests.log" | head -20 | tee -a "$SUMMARY"
  [ "${TEST_SCRIPTS:-1}" = 0 ] && return
  for t in run_device_cuda run_ttt_cuda; do
    rc=0
    timeout 150 bash "$SRC/tests/gpu/$t.sh" "$WM/wattmoe" "$SRC" "$DATA/kjv.val.txt" > "$OUTD/$t.log" 2>&1 || rc=$?
    note "$t: rc $rc; $(tail -2 "$OUTD/$t.log" | tr '\n' ' ')"
  done
}

phase_hashes() {
  for mode in "cuda fp32" "cuda bf16 host" "cuda bf16"; do
    set -- $mode
    local tag=${1}_${2}${3:+_$3}
    for b in base new; do
      local bin=$WM/wattmoe
      [ $b = base ] && bin=$WM/base/wattmoe
      timeout 240 bash "$SRC/scripts/dev/output_hashes.sh" "$bin" "$DATA" "$1" "$2" ${3:-} \
        > "$OUTD/hashes_${tag}_$b.txt" 2>>"$OUTD/hashes.log"
    done
    if diff -q "$OUTD/hashes_${tag}_base.txt" "$OUTD/hashes_${tag}_new.txt" > /dev/null; then
      note "hashes $tag: identical ($(wc -l < "$OUTD/hashes_${tag}_new.txt") commands)"
    else
      note "hashes $tag: differ in $(diff "$OUTD/hashes_${tag}_base.txt" "$OUTD/hashes_${tag}_new.txt" | grep -c '^>') of $(wc -l < "$OUTD/hashes_${tag}_new.txt"): $(diff "$OUTD/hashes_${tag}_base.txt" "$OUTD/hashes_${tag}_new.txt" | grep '^>' | cut -d' ' -f2 | tr '\n' ' ')"
    fi
  done
}

phase_layerbench() {
  for b in base new; do
    local bin=$WM/moe_layer_bench
    [ $b = base ] && bin=$WM/base/moe_layer_bench
    timeout 120 "$bin" --tokens 1,8,64,4096 --reps 30 --no-energy > "$OUTD/layer_$b.jsonl" 2>>"$OUTD/layerbench.log"
  done
  for pol in "--k-max 1" "--policy skip --beta 0.5" "--policy top_p --p 0.7" "--policy budget --budget-frac 0.5"; do
    # shellcheck disable=SC2086
    timeout 60 "$WM/moe_layer_bench" --tokens 64,4096 --reps 30 --no-energy $pol >> "$OUTD/layer_policies.jsonl" \
      2>>"$OUTD/layerbench.log"
  done
  python3 - "$OUTD" <<'PY' | tee -a "$SUMMARY"
import json, sys
d = sys.argv[1]
def load(f):
    out = {}
    for l in open(f"{d}/{f}"):
        try:
            j = json.loads(l.replace(":inf", ":Infinity"))
        except Exception:
            continue
        if j.get("impl") == "wattmoe": out[j["T"]] = j
    return out
b, n = load("layer_base.jsonl"), load("layer_new.jsonl")
key = "ms"
for T in sorted(n):
    if T in b:
        print(f"layer T={T}: base {b[T][key]:.3f} ms, new {n[T][key]:.3f} ms ({100 * (n[T][key] / b[T][key] - 1):+.1f}%)")
PY
}

phase_train() {
  local rc=0
  bash "$SRC/scripts/device/train_medium.sh" --bin "$WM/wattmoe" --data "$DATA" --out "$MEDIUM" --time-limit "$TRAIN_S" \
    > "$OUTD/train_medium.log" 2>&1 || rc=$?
  note "train medium: rc $rc; $(tail -3 "$OUTD/train_medium.log" | tr '\n' ' ')"
}

# The mix corpus carried by scripts/device/pack_mix.sh, unpacked once into /tmp/wm-mixdata (false when not carried).
mix_data() {
  [ -f /tmp/wm-mixdata/manifest.json ] && return 0
  [ -f "$SRC/.devcarry/mix.tar.xz" ] || { note "mix: no .devcarry/mix.tar.xz (scripts/device/pack_mix.sh)"; return 1; }
  mkdir -p /tmp/wm-mixdata && tar xJf "$SRC/.devcarry/mix.tar.xz" -C /tmp/wm-mixdata
}

phase_mixtorch() {
  local rc=0 mixd=/tmp/wm-mixdata py=/opt/torch/.venv/bin/python3 evals=()
  mix_data || return
  [ -x "$py" ] || py=python3
  for d in "$mixd"/*/; do evals+=(--eval "$d/test.txt"); done
  timeout 540 "$py" "$SRC/scripts/experiments/torch_reference.py" --preset medium --tokenizer "$mixd/tokenizer.json" \
    --train "$mixd/prose.train.txt" --val "$mixd/prose.val.txt" "${evals[@]}" --attn sdpa \
    --out "$OUTD/torch_medium_mix.json" > "$OUTD/mixtorch.log" 2>&1 || rc=$?
  note "mixtorch: rc $rc; $(tail -1 "$OUTD/mixtorch.log" | cut -c1-300)"
}

phase_mix() {
  local rc=0 mixd=/tmp/wm-mixdata
  mix_data || return
  local label=$(basename "$(ls "$mixd"/*.train.txt | head -1)" .train.txt)
  OUT="$OUTD/mix" bash "$SRC/scripts/device/train_medium.sh" --bin "$WM/wattmoe" --data "$mixd" --out "$MIXMODEL" \
    --time-limit "$TRAIN_S" --train "$mixd/$label.train.txt" --val "$mixd/$label.val.txt" \
    --tokenizer "$mixd/tokenizer.json" > "$OUTD/mix_train.log" 2>&1 || rc=$?
  note "mix: trained on $label: rc $rc; $(tail -2 "$OUTD/mix_train.log" | tr '\n' ' ')"
  # bf16 on the fused kernels (eval_D.json), and fp32 (eval_fp32_D.json: the precision it trained in, as mixtorch's)
  for d in "$mixd"/*/ prose_val; do
    d=$(basename "$d")
    local text=$mixd/$d/test.txt
    [ "$d" = prose_val ] && text=$mixd/prose.val.txt
    for p in bf16 fp32; do
      local tag=$d
      [ $p = fp32 ] && tag=fp32_$d
      "$WM/wattmoe" eval --device cuda --precision $p --model "$MIXMODEL" --data "$text" --json \
        > "$OUTD/mix/eval_$tag.json" 2>> "$OUTD/mix_eval.log" ||
        note "mix: eval $tag failed: $(tail -1 "$OUTD/mix_eval.log")"
    done
  done
  python3 - "$OUTD/mix" "$mixd/manifest.json" <<'PY' | tee -a "$SUMMARY"
import json, os, sys
out, manifest = sys.argv[1], json.load(open(sys.argv[2]))
rows = []
for d in manifest["domains"]:
    try:
        e = json.load(open(os.path.join(out, f"eval_{d['name']}.json")))
    except (OSError, ValueError):
        continue
    rows.append({"domain": d["name"], "kind": d["kind"], "trained_on": bool(d.get("train")),
                 "bits_per_byte": e.get("bits_per_byte"), "tokens": e.get("tokens")})
json.dump(rows, open(os.path.join(out, "domains.json"), "w"), indent=1)
print("mix: test bits/byte per domain: " + ", ".join(f"{r['domain']}{'*' if r['trained_on'] else ''} "
      f"{r['bits_per_byte']:.3f}" for r in rows) + "  (* trained on)")
PY
}

phase_servetier() {
  local rc=0 model=/tmp/wm-wide
  if [ ! -f "$model/config.json" ]; then
    timeout 240 "$WM/wattmoe" train --device cuda --preset medium --model-config "$SRC/scripts/device/wide_random.json" \
      --steps 20 --eval-every 1000 --ckpt-every 1000 --train "$DATA/kjv.train.txt" --val "$DATA/kjv.val.txt" \
      --out "$model" > "$OUTD/servetier_train.log" 2>&1 ||
      { note "servetier: training failed: $(tail -1 "$OUTD/servetier_train.log")"; return; }
  fi
  # shellcheck disable=SC2086
  timeout 420 python3 "$SRC/bench/serve_bench.py" --bin "$WM/wattmoe" --out "$OUTD/servetier" --model "$model" \
    --precision bf16 --policies "topk k_max=2" --concurrency 8 --duration 5 --budget-concurrency 8 \
    --control-deadband 0.005 --ladder-dwell 2 --fractions 0.9,0.4 --server-flag=--ladder-tier=fp8 ${SERVE_ARGS:-} \
    > "$OUTD/servetier.log" 2>&1 || rc=$?
  note "servetier: rc $rc; $(grep -E '^  budget' "$OUTD/servetier.log" | tr '\n' ' ')"
}

phase_quantbench() {
  local rc=0
  timeout 150 "$WM/moe_layer_bench" --tokens 1,8 --expert-precision bf16,fp8,int8 --reps 50 --window 1.0 \
    > "$OUTD/quantbench.jsonl" 2>> "$OUTD/quantbench.log" || rc=$?
  note "quantbench: rc $rc"
  grep '"ratios"' "$OUTD/quantbench.jsonl" | tee -a "$SUMMARY"
}

phase_quant() {
  local model=$MIXMODEL data=/tmp/wm-mixdata/prose.val.txt
  [ -f "$model/config.json" ] || model=$MEDIUM data=$DATA/kjv.val.txt
  [ -f "$model/config.json" ] || { note "quant: no trained model (run the mix or train phase first)"; return; }
  mkdir -p "$OUTD/quant"
  for p in bf16 fp8 int8; do
    "$WM/wattmoe" eval --device cuda --precision bf16 --expert-precision "$p" --model "$model" --data "$data" --json \
      > "$OUTD/quant/eval_$p.json" 2>> "$OUTD/quant.log" || note "quant: $p failed: $(tail -1 "$OUTD/quant.log")"
  done
  note "quant ($(basename "$model"), $(basename "$data")): $(python3 -c "import json,sys
r={p: json.load(open(f'$OUTD/quant/eval_{p}.json'))['bits_per_byte'] for p in ('bf16','fp8','int8')}
print(', '.join(f'{p} {v:.5f} ({(v/r[\"bf16\"]-1)*100:+.3f}%)' for p,v in r.items()))" 2>&1)"
}

phase_attnbench() {
  local rc=0
  for shape in "--heads 8 --kv-heads 8 --hd 64" "--heads 32 --kv-heads 8 --hd 128"; do
    # shellcheck disable=SC2086
    timeout 120 "$WM/attention_bench" --tokens 128,512,1024,2048,4096 $shape >> "$OUTD/attnbench.jsonl" \
      2>> "$OUTD/attnbench.log" || rc=$?
  done
  note "attnbench: rc $rc"
  grep -E '"(device|ratio)"' "$OUTD/attnbench.jsonl" | tee -a "$SUMMARY"
}

phase_energy() {
  local rc=0 med=()
  [ -f "$MEDIUM/config.json" ] && med=(--medium "$MEDIUM")
  OUT="$OUTD/energy" bash "$SRC/scripts/device/energy_policies.sh" --bin-dir "$WM" --data "$DATA/kjv.val.txt" "${med[@]}" \
    --models "${ENERGY_MODELS:-kjv-small,medium,mixtral}" --budget-s "${ENERGY_BUDGET_S:-355}" \
    > "$OUTD/energy.log" 2>&1 || rc=$?
  note "energy: rc $rc; $(tail -3 "$OUTD/energy.log" | tr '\n' ' ')"
}

phase_budget() {
  local rc=0 model=$SRC/models/kjv-small
  [ -f "$MEDIUM/config.json" ] && model=$MEDIUM
  bash "$SRC/scripts/device/control_real.sh" --bin "$WM/wattmoe" --data "$DATA/kjv.val.txt" --out "$OUTD/budget" \
    --plant model --model "$model" --windows "${BUDGET_WINDOWS:-60}" --free-windows 16 --span "${BUDGET_SPAN:-idle}" \
    > "$OUTD/budget.log" 2>&1 || rc=$?
  note "budget ($model): rc $rc"
  grep -E '^\|' "$OUTD/budget/control_real.log" 2>/dev/null | tee -a "$SUMMARY"
}

# ttt_energy.sh on MODEL (the stream count per 1 s step that lifts it well above idle: ~0.35 s of GPU work a step on
# an H100), its log LOG under $OUTD, the table lines into the summary; more ttt_energy.sh flags after LABEL.
ttt_energy_on() {
  local model=$1 log=$2 label=$3 rc=0 streams=16384
  shift 3
  [ "$model" = "$MEDIUM" ] && streams=2048
  bash "$SRC/scripts/device/ttt_energy.sh" --bin "$WM/wattmoe" --data "$DATA" --model "$model" --windows 10 \
    --streams "$streams" "$@" > "$OUTD/$log" 2>&1 || rc=$?
  note "$label: rc $rc"
  grep -E '^\||share' "$OUTD/$log" | tee -a "$SUMMARY"
}

phase_tttseeds() {
  local model=$MEDIUM
  [ -f "$model/config.json" ] || model=$SRC/models/kjv-small
  for seed in ${TTT_SEEDS:-1 2 3}; do
    ttt_energy_on "$model" "ttt_seed$seed.log" "ttt $(basename "$model") lora seed $seed" --out "$OUTD/ttt_seeds" \
      --name "$(basename "$model")-seed$seed" --lora-seed "$seed"
  done
}

phase_ttttime() {
  local rc bins=(new) bin log
  [ -x "$WM/base/wattmoe" ] && bins=(new base new2)  # a packed reference build: before/after on this machine
  for model in "$SRC/models/kjv-small" "$MEDIUM"; do
    [ -f "$model/config.json" ] || continue
    for b in "${bins[@]}"; do
      rc=0 bin=$WM/wattmoe log=$OUTD/ttt_time_$(basename "$model")-$b.log
      [ "$b" = base ] && bin=$WM/base/wattmoe
      # shellcheck disable=SC2086
      OUT=$OUTD bash "$SRC/scripts/device/ttt_time.sh" --bin "$bin" --data "$DATA" --model "$model" \
        --name "$(basename "$model")-$b" -- ${TTT_TIME_ARGS:-} > "$log" 2>&1 || rc=$?
      note "ttt_time $(basename "$model") $b: rc $rc"
      tee -a "$SUMMARY" < "$log"
    done
  done
}

phase_tttkernels() {
  local rc
  for model in "$SRC/models/kjv-small" "$MEDIUM"; do
    [ -f "$model/config.json" ] || continue
    rc=0
    OUT=$OUTD timeout 280 bash "$SRC/scripts/device/ttt_kernels.sh" --bin "$WM/wattmoe" --data "$DATA" --model "$model" \
      > "$OUTD/ttt_kernels_$(basename "$model").log" 2>&1 || rc=$?
    note "ttt_kernels $(basename "$model"): rc $rc"
    tee -a "$SUMMARY" < "$OUTD/ttt_kernels_$(basename "$model").log"
  done
}

phase_tttref() {
  local model precision rc name
  source "$SRC/scripts/device/ttt_recipe.sh"
  mkdir -p "$OUTD/tttref"
  for model in "$SRC/models/kjv-small" "$MEDIUM"; do
    [ -f "$model/config.json" ] || continue
    for precision in fp32 bf16; do
      rc=0 name=$(basename "$model")_$precision
      timeout 120 "$WM/wattmoe" run --model "$model" --device cuda --precision $precision \
        --data "$DATA/kjv.test.noise10.txt" --max-tokens 5120 --policy skip --beta 0.5 "${TTT[@]}" \
        --summary "$OUTD/tttref/$name.json" > "$OUTD/tttref/$name.log" 2>&1 || rc=$?
      note "tttref $name: rc $rc; $(grep -m1 -o 'bits/byte [0-9.]*' "$OUTD/tttref/$name.log")"
    done
  done
}

phase_ttt() {
  for model in "$SRC/models/kjv-small" "$MEDIUM"; do
    [ -f "$model/config.json" ] || continue
    ttt_energy_on "$model" "ttt_$(basename "$model").log" "ttt $(basename "$model")" --out "$OUTD/ttt"
  done
}

phase_slots() {
  local rc=0
  timeout 400 "$WM/energy_policies" --name slots --random-init 1 --config "$SRC/scripts/device/medium_random.json" \
    --data "$DATA/kjv.val.txt" --out "$OUTD/slots" --points "topk; skip beta=0.5" --cache 256 \
    --modes "${SLOT_MODES:-slots8,slots8-serial,slots64,slots64-serial,decode64}" --window-s 1 --reps 3 --idle-s 4 \
    --settle-s 1 --time-budget-s 300 --precision bf16 --no-host-baseline > "$OUTD/slots.log" 2>&1 || rc=$?
  note "slots: rc $rc; $(tail -2 "$OUTD/slots.log" | tr '\n' ' ')"
  [ -f "$OUTD/slots/measurements.jsonl" ] && python3 "$SRC/bench/energy_table.py" "$OUTD/slots/measurements.jsonl" \
    --out "$OUTD/slots/table.md" >> "$OUTD/slots.log" 2>&1 && cat "$OUTD/slots/table.md" >> "$SUMMARY"
}

phase_serve() {
  local rc=0 model=$SRC/models/kjv-small
  [ -f "$MEDIUM/config.json" ] && model=$MEDIUM
  if ldd "$WM/wattmoe" | grep -q "not found"; then  # the HTTP library's own needs (libssl, zlib) are not packed
    note "serve: wattmoe lacks shared libraries: $(ldd "$WM/wattmoe" | grep "not found" | tr -s ' \t\n' ' ')"
    return
  fi
  # shellcheck disable=SC2086
  timeout 540 python3 "$SRC/bench/serve_bench.py" --bin "$WM/wattmoe" --model "$model" --device cuda --precision bf16 \
    --duration 8 --max-tokens 32 --out "$OUTD/serve" ${SERVE_ARGS:-} ${SERVE_TTT_FLAGS:+--ttt-flags="$SERVE_TTT_FLAGS"} \
    > "$OUTD/serve.log" 2>&1 || rc=$?
  note "serve ($(basename "$model")): rc $rc"
  grep -E '^(  |serve_bench)' "$OUTD/serve.log" | tee -a "$SUMMARY"
}

for p in "$@"; do
  note "== $p"
  "phase_$p"
done
note "done"
tar czf "$RESULT/session.tgz" -C "$OUTD" . 2>/dev/null
cp "$SUMMARY" "$RESULT/summary.txt"
cat "$SUMMARY"
