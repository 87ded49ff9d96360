#!/usr/bin/env bash
# End to end through the CLI: train the tiny preset briefly, evaluate it (JSON), generate from it, and the clear
# errors for a prompt longer than the context, a checkpoint of another architecture, and a missing corpus.
set -euo pipefail
w=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bible -f "Gen1:1-Gen20:18" | sed 's/^[^ ]* //' > "$tmp/train.txt"
bible -f "Gen21:1-Gen22:24" | sed 's/^[^ ]* //' > "$tmp/val.txt"

"$w" train --preset tiny --steps 30 --eval-every 30 --train "$tmp/train.txt" --val "$tmp/val.txt" --out "$tmp/m" \
  --json > "$tmp/train.json" 2> "$tmp/train.log"
grep -q '"last_step":30' "$tmp/train.json"
test -f "$tmp/m/config.json" && test -f "$tmp/m/model.safetensors" && test -f "$tmp/m/checkpoint/optimizer.safetensors"
test "$(grep -c val_bpb "$tmp/m/metrics.jsonl")" -ge 1

"$w" eval --model "$tmp/m" --data "$tmp/val.txt" --seq 64 --json > "$tmp/eval.json"
python3 - "$tmp/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert 0 < r["bits_per_byte"] < 8, r
assert r["tokens"] > 1000 and abs(r["experts_per_token"] - 2.0) < 1e-9, r
assert set(r["expert_counts"]) == {"0", "1"}, r
PY

out=$("$w" generate --model "$tmp/m" --prompt "And God said" --max-new-tokens 20 --seed 3 2>/dev/null)
case "$out" in "And God said"*) ;; *) echo "generate output does not start with the prompt: $out"; exit 1 ;; esac
test "${#out}" -ge 30

expect_error() {  # expect_error PHRASE cmd...
  local phrase=$1; shift
  set +e; "$@" > /dev/null 2> "$tmp/err"; local rc=$?; set -e
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then echo "expected a clean failure, got rc=$rc: $*"; exit 1; fi
  grep -q "wattmoe: error: .*$phrase" "$tmp/err" || { echo "missing '$phrase' in: $(cat "$tmp/err")"; exit 1; }
}
expect_error "the prompt has 13 tokens but the context holds 8" \
  "$w" generate --model "$tmp/m" --prompt "And God said " --context 8
expect_error "architecture differs from preset small" \
  "$w" train --preset small --steps 1 --train "$tmp/train.txt" --val "$tmp/val.txt" --out "$tmp/m"
expect_error "nothing.txt: corpus file not found" \
  "$w" train --preset tiny --train "$tmp/nothing.txt" --val "$tmp/val.txt" --out "$tmp/m2"

# A preset with a subword tokenizer: the model's vocabulary is the tokenizer's, the tokenizer travels with the model
# (eval and generate find it there).
"$w" data tokenizer --train "$tmp/train.txt" --vocab 300 --out "$tmp/tok.json" > /dev/null 2>&1
"$w" train --preset tiny --steps 4 --eval-every 4 --tokenizer "$tmp/tok.json" --train "$tmp/train.txt" \
  --val "$tmp/val.txt" --out "$tmp/bpe" > /dev/null 2> "$tmp/bpe.log"
python3 -c "import json,sys; v=json.load(open(sys.argv[1]))['vocab_size']; assert v == 300, v" "$tmp/bpe/config.json"
cmp -s "$tmp/tok.json" "$tmp/bpe/tokenizer.json"
"$w" eval --model "$tmp/bpe" --data "$tmp/val.txt" --seq 32 --json | grep -q '"bits_per_byte"'
echo "train/eval/generate: ok"
