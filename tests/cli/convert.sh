#!/usr/bin/env bash
# `wattmoe convert`: kjv-small written as BF16 loads, holds BF16 tensors, says bfloat16 in config.json, and scores
# within bf16's rounding of the F32 original; written back as F32 it is exactly those rounded weights (a second BF16
# pass changes nothing); an in-place conversion replaces the files; the tokenizer files travel (mix-small); bad
# input is refused with one clear error.
# Usage: bash convert.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: convert.sh <wattmoe> <source-dir>}
SRC=${2:?usage: convert.sh <wattmoe> <source-dir>}
ERR_DIR=$(mktemp -d)
trap 'rm -rf "$ERR_DIR"' EXIT
source "$SRC/tests/cli/lib/expect_error.sh"
T=$ERR_DIR
head -c 4000 "$SRC/data/kjv.val.txt" 2>/dev/null > "$T/text.txt" || true
[ -s "$T/text.txt" ] || printf 'In the beginning God created the heaven and the earth. And the earth was without form.\n%.0s' {1..40} > "$T/text.txt"

"$BIN" convert --model "$SRC/models/kjv-small" --out "$T/b16" --json > "$T/c.json" || fail "convert to bf16 failed"
python3 - "$T/c.json" "$T/b16" <<'PY' || fail "convert's summary or files are wrong"
import json, struct, sys
s = json.load(open(sys.argv[1]))
assert s["schema"] == "wattmoe.convert/1" and s["dtype"] == "BF16" and s["from_dtypes"] == ["F32"], s
b = open(sys.argv[2] + "/model.safetensors", "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
assert {v["dtype"] for k, v in h.items() if k != "__metadata__"} == {"BF16"}, "not every tensor is BF16"
assert json.load(open(sys.argv[2] + "/config.json"))["torch_dtype"] == "bfloat16"
assert s["bytes"] == len(b)
PY
bpb() { "$BIN" eval --model "$1" --data "$T/text.txt" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['bits_per_byte'])"; }
f32=$(bpb "$SRC/models/kjv-small") b16=$(bpb "$T/b16")
python3 -c "import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 2e-3 * a else 1)" "$f32" "$b16" ||
  fail "bf16 scores $b16 bits/byte, f32 $f32: more than bf16 rounding"

# Back to F32: the rounded weights exactly (scores equal); BF16 again: the same bytes as the first pass's tensors.
"$BIN" convert --model "$T/b16" --out "$T/f32" --dtype f32 > /dev/null || fail "convert to f32 failed"
[ "$(bpb "$T/f32")" = "$b16" ] || fail "F32 written from BF16 does not score as the BF16 model"
cp -r "$T/f32" "$T/inplace"
"$BIN" convert --model "$T/inplace" --out "$T/inplace" > /dev/null || fail "in-place convert failed"
cmp -s "$T/inplace/model.safetensors" "$T/b16/model.safetensors" || fail "BF16 of the rounded weights differs from the first BF16"
ls "$T"/inplace/.*tmp* > /dev/null 2>&1 && fail "in-place convert left a temporary file"

# The tokenizer files travel with the weights.
"$BIN" convert --model "$SRC/models/mix-small" --out "$T/mix" > /dev/null || fail "convert mix-small failed"
for f in tokenizer.json tokenizer_config.json; do cmp -s "$SRC/models/mix-small/$f" "$T/mix/$f" || fail "$f not copied"; done

expect_error "dtype" "$BIN" convert --model "$SRC/models/kjv-small" --out "$T/x" --dtype f16
expect_error "config.json" "$BIN" convert --model "$T/nowhere" --out "$T/y"
finish convert.sh
