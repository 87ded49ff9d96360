#!/usr/bin/env bash
# `wattmoe run --device cuda --ttt` against `wattmoe run --device cpu --ttt` (needs a GPU: ctest test gpu.run_ttt_cuda,
# label gpu; reads a text, e.g. data/kjv.val.txt). Same model (models/kjv-small), text and the tuned TTT flags of
# docs/results.md (router+norms+LoRA rank 8, AdamW β₁ 0, lr 1e-2 decaying, per-group rates; the source guard on, as by
# default), once with the model's own routing and once under --power-budget-w 300 (the controller moves the routing
# policy window by window; its decisions must be the same on both). Checks, fp32:
#   - the summary's device, windows, tokens, bytes, adapted windows, resets (and reasons), source checks and probation
#     windows are equal; per window: adapted, reset, probation, expert counts and controller decisions equal
#     (routing must not flip);
#   - per-window nats and the run's bits/byte within 1.01e-3 relative: tests/gpu/adapt_cuda_test.cpp's bound
#     kScore·nats + kDrift·|nats − nats_θ₀| with kScore 1e-5, kDrift 1e-3 and |nats − nats_θ₀| ≤ nats (adaptation
#     changes a window's loss by less than the loss itself).
# bf16 (--precision bf16 --ttt), on the fused MoE kernels (the default for bf16: device-side routing, backward from
# the device routing) and on host routing: both run end to end with the same windows, and each run's bits/byte lies
# within 1% of the CPU's (bf16 rounding changes routing and the trajectory, so no window-by-window parity).
# Usage: bash run_ttt_cuda.sh <wattmoe> <source-dir> <text> [max-tokens (default 3000)]
set -u
BIN=${1:?usage: run_ttt_cuda.sh <wattmoe> <source-dir> <text> [max-tokens]}
SRC=${2:?usage}
DATA=${3:?usage}
MAXTOK=${4:-3000}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_ttt_cuda.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
TTT="--ttt --ttt-optimizer adamw --ttt-groups router,norms,lora --lora-rank 8 --ttt-lr 1e-2 --ttt-beta1 0
     --ttt-lr-decay 45 --ttt-lr-norms 4 --ttt-lr-router 0.125 --ttt-lr-lora 0.75"

for run in cpu cuda cuda_bf16 cuda_bf16_host budget_cpu budget_cuda; do
  dev=cuda prec=fp32 extra=""
  case $run in *cpu) dev=cpu ;; esac
  case $run in *bf16*) prec=bf16 ;; esac
  case $run in *host) extra="--moe-kernels host" ;; esac
  case $run in budget*) extra="--power-budget-w 300" ;; esac
  # shellcheck disable=SC2086
  "$BIN" run --model "$MODEL" --data "$DATA" --max-tokens "$MAXTOK" --device "$dev" --precision "$prec" $TTT $extra \
    --summary "$TMP/$run.json" --log "$TMP/$run.jsonl" 2> "$TMP/$run.err" || fail "$run: $(tail -3 "$TMP/$run.err")"
done

cat > "$TMP/cmp.py" <<'PY'
import json, math, sys
d, pre = sys.argv[1], sys.argv[2]
c, g, b = (json.load(open(f"{d}/{pre}{x}.json")) for x in ("cpu", "cuda", "cuda_bf16" if not pre else "cuda"))
assert c["device"] == "cpu" and g["device"] == "cuda", (c["device"], g["device"])
for k in ("windows", "tokens", "bytes", "adapted_windows", "resets", "reset_reasons", "source_checks",
          "probation_windows", "suspended_windows"):
    assert c[k] == g[k], (k, c[k], g[k])
assert c["adapted_windows"] > 0
tol = 1.01e-3
rel = abs(g["bits_per_byte"] - c["bits_per_byte"]) / c["bits_per_byte"]
assert rel <= tol, (c["bits_per_byte"], g["bits_per_byte"], rel)
rc = [json.loads(l) for l in open(f"{d}/{pre}cpu.jsonl")]
rg = [json.loads(l) for l in open(f"{d}/{pre}cuda.jsonl")]
assert len(rc) == len(rg) == c["windows"]
worst = 0.0
for x, y in zip(rc, rg):
    for k in ("adapted", "reset", "expert_counts", "probation", "control"):
        if k not in x and k not in y: continue
        assert x[k] == y[k], ("window", x["window"], k, x[k], y[k])
    worst = max(worst, abs(x["nats"] - y["nats"]) / max(abs(x["nats"]), 1e-30))
assert worst <= tol, worst
assert b["windows"] == c["windows"] and math.isfinite(b["bits_per_byte"]), b["bits_per_byte"]
if not pre:
    h = json.load(open(f"{d}/cuda_bf16_host.json"))
    assert b["moe_kernels"] == "fused" and h["moe_kernels"] == "host", (b["moe_kernels"], h["moe_kernels"])
    for r in (b, h):
        assert r["windows"] == c["windows"] and r["adapted_windows"] > 0
        rel_bf16 = abs(r["bits_per_byte"] - c["bits_per_byte"]) / c["bits_per_byte"]
        assert rel_bf16 <= 0.01, (r["moe_kernels"], r["bits_per_byte"], c["bits_per_byte"], rel_bf16)
def per_window(r):
    return (r["infer_seconds"] / r["windows"] * 1e3, r["adapt_seconds"] / r["windows"] * 1e3)
msg = (f"ttt {pre or 'own routing'}: windows {c['windows']} adapted {c['adapted_windows']} experts/token "
       f"{c['experts_per_token']:.4f}; bpb cpu {c['bits_per_byte']:.6f} cuda {g['bits_per_byte']:.6f} (rel {rel:.2e}, "
       f"worst window {worst:.2e}); ms/window infer+adapt cpu %.2f+%.2f cuda %.2f+%.2f" % (*per_window(c),
                                                                                        *per_window(g)))
if not pre:
    msg += (f"; bf16 fused bpb {b['bits_per_byte']:.6f}, ms/window %.2f+%.2f" % per_window(b) +
            f"; bf16 host bpb {h['bits_per_byte']:.6f}, ms/window %.2f+%.2f" % per_window(h))
print(msg)
PY
python3 "$TMP/cmp.py" "$TMP" "" || fail "cuda --ttt differs from cpu --ttt"
# Under a power budget the controller changes the routing policy window by window: same decisions on both.
python3 "$TMP/cmp.py" "$TMP" "budget_" || fail "cuda --ttt differs from cpu --ttt under --power-budget-w 300"

if [ $failures -ne 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi
echo "run_ttt_cuda: all checks passed"
