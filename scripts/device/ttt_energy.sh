#!/usr/bin/env bash
# Does energy-aware test-time training pay for itself, measured? On a noisy stream (10% character noise), the model on
# the GPU (bf16, fused kernels) serves --streams copies of each window per 1 s step (`wattmoe run --plant model`: the
# model itself, its energy read from the NVML counter; the adaptation's own work falls inside the measured steps), in
# three runs of the same windows and streams:
#   static    top-2, no adaptation (the baseline);
#   policy    the energy-aware policy (skip β), no adaptation;
#   ttt       the energy-aware policy with test-time training (router, norms, LoRA; the tuned recipe of
#             docs/results.md: AdamW β₁ 0, lr 1e-2 decaying over 45 steps, per-group rates, rank 8; source guard on).
# The knob β is chosen BEFORE on the tuning split (kjv.val.noise10: the largest β in the list whose ttt bits/byte is
# at most static's; simulated plant, bits/byte only) and the runs are reported on kjv.test.noise10. Per run: bits/byte,
# experts/token, measured whole-board J/token and J/token above idle (idle measured by each run before any work),
# adaptation time; the adaptation's share of the energy = (J_ttt − J_policy) / J_ttt. Read only on the GPU.
# Usage: scripts/device/ttt_energy.sh --bin WATTMOE --data DIR --model DIR [--name NAME] [--streams N] [--windows N]
#                                    [--betas "0.3 0.5 0.7"] [--out DIR] [--lora-seed N]
# --lora-seed: the seed of the fresh LoRA factors (default the engine's), for spreads over seeds.
# Writes under OUT (default $OUT, else out/ttt_energy): NAME.tune.json, NAME.{static,policy,ttt}.json (summaries),
# NAME.summary.json and a table on stdout. About 3 × windows seconds plus the tuning (seconds on a GPU).
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$SRC/build/wattmoe" DATA="$SRC/data" MODEL="$SRC/models/kjv-small" NAME="" STREAMS=256 WINDOWS=30
BETAS="0.3 0.5 0.7" DIR=${OUT:-$SRC/out/ttt_energy} SEED=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --windows) WINDOWS=$2; shift 2 ;;
    --betas) BETAS=$2; shift 2 ;;
    --out) DIR=$2; shift 2 ;;
    --lora-seed) SEED=(--lora-seed "$2"); shift 2 ;;
    *) echo "ttt_energy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
NAME=${NAME:-$(basename "$MODEL")}
mkdir -p "$DIR"
source "$SRC/scripts/device/ttt_recipe.sh"
TTT+=("${SEED[@]}")
GPU=(--model "$MODEL" --device cuda --precision bf16)
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*" >&2; }

# 1. Tuning on val (simulated plant: bits/byte only), the same number of windows.
TUNE_TOK=$((WINDOWS * 128))
"$BIN" run "${GPU[@]}" --data "$DATA/kjv.val.noise10.txt" --max-tokens "$TUNE_TOK" --summary "$DIR/$NAME.tune.static.json" \
  2>/dev/null || { say "tuning: static run failed"; exit 1; }
for b in $BETAS; do
  "$BIN" run "${GPU[@]}" --data "$DATA/kjv.val.noise10.txt" --max-tokens "$TUNE_TOK" --policy skip --beta "$b" \
    "${TTT[@]}" --summary "$DIR/$NAME.tune.$b.json" 2>/dev/null || { say "tuning: beta $b failed"; exit 1; }
done
BETA=$(python3 - "$DIR" "$NAME" $BETAS <<'PY'
import json, sys
d, name, betas = sys.argv[1], sys.argv[2], sys.argv[3:]
static = json.load(open(f"{d}/{name}.tune.static.json"))["bits_per_byte"]
rows = {b: json.load(open(f"{d}/{name}.tune.{b}.json")) for b in betas}
ok = [b for b in betas if rows[b]["bits_per_byte"] <= static]
pick = max(ok, key=float) if ok else min(betas, key=float)
json.dump({"split": "kjv.val.noise10", "static_bits_per_byte": static, "picked_beta": float(pick),
           "candidates": {b: {"bits_per_byte": r["bits_per_byte"], "experts_per_token": r["experts_per_token"]}
                          for b, r in rows.items()}}, open(f"{d}/{name}.tune.json", "w"), indent=1)
print(pick)
PY
) || { say "tuning analysis failed"; exit 1; }
say "tuned on kjv.val.noise10: beta $BETA"

# 2. The measured runs on test.
RUN=("${GPU[@]}" --data "$DATA/kjv.test.noise10.txt" --max-tokens $((WINDOWS * 128)) --plant model
     --sim-streams "$STREAMS" --step-period-s 1 --idle-s 2)
"$BIN" run "${RUN[@]}" --summary "$DIR/$NAME.static.json" 2>>"$DIR/$NAME.log" || { say "static run failed"; exit 1; }
say "static done"
"$BIN" run "${RUN[@]}" --policy skip --beta "$BETA" --summary "$DIR/$NAME.policy.json" 2>>"$DIR/$NAME.log" ||
  { say "policy run failed"; exit 1; }
say "policy done"
"$BIN" run "${RUN[@]}" --policy skip --beta "$BETA" "${TTT[@]}" --summary "$DIR/$NAME.ttt.json" 2>>"$DIR/$NAME.log" ||
  { say "ttt run failed"; exit 1; }
say "ttt done"

python3 - "$DIR" "$NAME" "$BETA" <<'PY'
import json, sys
d, name, beta = sys.argv[1], sys.argv[2], float(sys.argv[3])
runs = {k: json.load(open(f"{d}/{name}.{k}.json")) for k in ("static", "policy", "ttt")}
rows = {}
for k, s in runs.items():
    m = s["plant"]
    tokens = m["joules"] / m["joules_per_token"] if m["joules_per_token"] > 0 else 0
    above = (m["joules"] - m["idle_w"] * m["seconds"]) / tokens if tokens else float("nan")
    rows[k] = {"bits_per_byte": s["bits_per_byte"], "experts_per_token": s["experts_per_token"],
               "j_per_token": m["joules_per_token"], "j_per_token_above_idle": above, "joules": m["joules"],
               "seconds": m["seconds"], "idle_w": m["idle_w"], "mean_power_w": m["mean_power_w"],
               "tokens": tokens, "windows": s["windows"], "adapt_seconds": s["adapt_seconds"],
               "infer_seconds": s["infer_seconds"], "overrun_windows": m["overrun_windows"]}
b = rows["static"]
out = {"model": name, "card": runs["static"]["plant"]["gpu"], "beta": beta, "runs": rows,
       "adaptation_energy_share": (rows["ttt"]["joules"] - rows["policy"]["joules"]) / rows["ttt"]["joules"],
       "ttt_beats_static": rows["ttt"]["bits_per_byte"] < b["bits_per_byte"] and
                           rows["ttt"]["j_per_token"] < b["j_per_token"]}
json.dump(out, open(f"{d}/{name}.summary.json", "w"), indent=1)
print(f"{name} on {out['card']}, kjv.test.noise10, skip beta {beta} (tuned on val), {b['windows']} windows")
print("| run | bits/byte | experts/token | J/token (board) | J/token above idle | vs static (board / above idle) | adapt s |")
print("|---|---|---|---|---|---|---|")
for k, r in rows.items():
    print(f"| {k} | {r['bits_per_byte']:.4f} | {r['experts_per_token']:.3f} | {r['j_per_token'] * 1e3:.4f} mJ | "
          f"{r['j_per_token_above_idle'] * 1e3:.4f} mJ | {100 * (r['j_per_token'] / b['j_per_token'] - 1):+.1f}% / "
          f"{100 * (r['j_per_token_above_idle'] / b['j_per_token_above_idle'] - 1):+.1f}% | {r['adapt_seconds']:.2f} |")
print(f"adaptation's share of the energy (ttt vs policy runs): {100 * out['adaptation_energy_share']:.1f}%; "
      f"ttt beats static on both: {out['ttt_beats_static']}")
PY
