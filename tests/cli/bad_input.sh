#!/usr/bin/env bash
# Bad input through the CLI: `wattmoe forward` on a corrupted copy of tests/fixtures/mixtral_gqa or on bad input ids
# must exit non-zero (never by a signal), print exactly one line on stderr that starts with "wattmoe: error:", names
# the file (or the tensor/field) and says what is wrong, and never report a failed internal check.
# Usage: bash bad_input.sh <path-to-wattmoe> <source-dir> (VERBOSE=1 prints every message). Needs only bash,
# coreutils and python3's standard library.
set -u
BIN=${1:?usage: bad_input.sh <wattmoe> <source-dir>}
SRC=${2:?usage: bad_input.sh <wattmoe> <source-dir>}
FIX="$SRC/tests/fixtures/mixtral_gqa"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_bad_input.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Corruptions of safetensors files and JSON configs, python3 standard library only.
cat > "$TMP/corrupt.py" <<'PY'
import json, struct, sys

def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]

def write_st(path, header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)

def data_end(header):
    return max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")

op, path = sys.argv[1], sys.argv[2]
if op == "header-len":  # declare a header longer than the whole file
    b = bytearray(open(path, "rb").read())
    b[:8] = struct.pack("<Q", len(b) + 1000)
    open(path, "wb").write(bytes(b))
elif op == "config":  # config <path> <key> <json value | DELETE>
    c = json.load(open(path))
    if sys.argv[4] == "DELETE":
        del c[sys.argv[3]]
    else:
        c[sys.argv[3]] = json.loads(sys.argv[4])
    json.dump(c, open(path, "w"), indent=2)
elif op == "ids":  # ids <path> <dtype> <shape json> <values json>
    dtype, shape, values = sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
    name = sys.argv[6] if len(sys.argv) > 6 else "input_ids"
    fmt = {"I64": "q", "I32": "i", "F32": "f"}[dtype]
    data = struct.pack("<%d%s" % (len(values), fmt), *values)
    write_st(path, {name: {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}, data)
else:
    h, data = read_st(path)
    if op == "overlap":  # the second [32] norm weight starts inside the first
        b = h["model.layers.0.input_layernorm.weight"]["data_offsets"][0] + 64
        h["model.layers.0.post_attention_layernorm.weight"]["data_offsets"] = [b, b + 128]
    elif op == "out-of-range":
        e = data_end(h) + 8
        h["model.norm.weight"]["data_offsets"] = [e, e + 128]
    elif op == "dtype":  # I32 has the size of F32, so only the dtype is wrong
        h["model.layers.1.block_sparse_moe.gate.weight"]["dtype"] = "I32"
    elif op == "shape":
        h["model.norm.weight"]["shape"] = [16, 2]
    elif op == "drop":  # the tensor and its bytes (the others stay contiguous)
        b, e = h.pop("model.layers.1.self_attn.k_proj.weight")["data_offsets"]
        data = data[:b] + data[e:]
        for k, v in h.items():
            if k != "__metadata__" and v["data_offsets"][0] >= e:
                v["data_offsets"] = [v["data_offsets"][0] - (e - b), v["data_offsets"][1] - (e - b)]
    else:
        sys.exit("unknown op " + op)
    write_st(path, h, data)
PY

# A fresh copy of the fixture's model (config.json + model.safetensors) in $TMP/$1.
model_copy() {
  mkdir -p "$TMP/$1"
  cp "$FIX/config.json" "$FIX/model.safetensors" "$TMP/$1/"
  echo "$TMP/$1"
}
corrupt() { python3 "$TMP/corrupt.py" "$@" || fail "generator failed: $*"; }

# expect_error <case> <phrase>... -- <wattmoe arguments>
expect_error() {
  local name=$1
  shift
  local phrases=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    phrases+=("$1")
    shift
  done
  shift
  "$BIN" "$@" >"$TMP/stdout.txt" 2>"$TMP/stderr.txt"
  local rc=$?
  local lines first
  lines=$(awk 'END { print NR }' "$TMP/stderr.txt")
  first=$(head -n 1 "$TMP/stderr.txt")
  if [ "$rc" -eq 0 ]; then
    fail "$name: exit status 0"
  elif [ "$rc" -ge 128 ]; then
    fail "$name: exit status $rc (killed by a signal)"
  fi
  if grep -q "check failed" "$TMP/stderr.txt"; then fail "$name: an internal check failed"; fi
  if [ "$lines" -ne 1 ]; then fail "$name: $lines lines on stderr (want exactly 1)"; fi
  case "$first" in
    "wattmoe: error: "*) ;;
    *) fail "$name: stderr does not start with 'wattmoe: error: '" ;;
  esac
  for p in "${phrases[@]}"; do
    case "$first" in
      *"$p"*) ;;
      *) fail "$name: message lacks '$p'" ;;
    esac
  done
  if [ -n "${VERBOSE:-}" ]; then echo "$name: $first"; fi
  if [ "$failures" -gt "${reported:-0}" ]; then
    sed 's/^/    stderr: /' "$TMP/stderr.txt" | head -n 5 >&2
    reported=$failures
  fi
}

OUT="$TMP/out.safetensors"
IN="$FIX/input.safetensors"

# The intact fixture works (so the failures below are the corruption's doing).
"$BIN" forward --model "$FIX" --input "$IN" --out "$OUT" --grad entropy 2>"$TMP/stderr.txt" ||
  fail "intact fixture: exit status $? ($(head -n 1 "$TMP/stderr.txt"))"
[ -s "$OUT" ] || fail "intact fixture: no output written"

# --- model.safetensors ---
d=$(model_copy truncated_data)
head -c 40000 "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error "truncated in the data" "$d/model.safetensors" "beyond the data section" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy truncated_header)
head -c 100 "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error "truncated in the header" "$d/model.safetensors" "beyond the end of the file" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy truncated_length)
head -c 5 "$FIX/model.safetensors" >"$d/model.safetensors"
expect_error "truncated in the length field" "$d/model.safetensors" "shorter than the 8-byte header" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy empty)
: >"$d/model.safetensors"
expect_error "empty file" "$d/model.safetensors" "empty" -- forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy header_len)
corrupt header-len "$d/model.safetensors"
expect_error "header length beyond the file" "$d/model.safetensors" "header length" "beyond the end of the file" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy overlap)
corrupt overlap "$d/model.safetensors"
expect_error "overlapping offsets" "$d/model.safetensors" "model.layers.0.input_layernorm.weight" \
  "overlapping byte ranges" -- forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy out_of_range)
corrupt out-of-range "$d/model.safetensors"
expect_error "out-of-range offsets" "$d/model.safetensors" "model.norm.weight" "beyond the data section" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy dtype)
corrupt dtype "$d/model.safetensors"
expect_error "I32 tensor" "$d" "model.layers.1.block_sparse_moe.gate.weight" "dtype I32" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy shape)
corrupt shape "$d/model.safetensors"
expect_error "shape disagrees with config.json" "$d" "model.norm.weight" "shape [16, 2]" "config.json implies [32]" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy missing)
corrupt drop "$d/model.safetensors"
expect_error "missing tensor" "$d" "missing tensor model.layers.1.self_attn.k_proj.weight" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

# --- config.json ---
d=$(model_copy model_type)
corrupt config "$d/config.json" model_type '"gpt2"'
expect_error "unknown model_type" "$d/config.json" "unsupported model_type" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy malformed)
head -c 300 "$FIX/config.json" >"$d/config.json"
expect_error "malformed config.json" "$d/config.json" "malformed JSON" -- forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy missing_field)
corrupt config "$d/config.json" vocab_size DELETE
expect_error "config.json without vocab_size" "$d/config.json" "vocab_size" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

d=$(model_copy experts_changed)
corrupt config "$d/config.json" num_local_experts 3
expect_error "config.json with 3 experts" "$d" "block_sparse_moe.gate.weight" "config.json implies [3, 32]" -- \
  forward --model "$d" --input "$IN" --out "$OUT"

expect_error "no such model directory" "$TMP/nowhere" -- forward --model "$TMP/nowhere" --input "$IN" --out "$OUT"

# --- input ids ---
corrupt ids "$TMP/ids_big.safetensors" I64 '[2, 3]' '[1, 2, 3, 4, 64, 5]'
expect_error "id = vocab size" "$TMP/ids_big.safetensors" "outside the vocabulary" -- \
  forward --model "$FIX" --input "$TMP/ids_big.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_huge.safetensors" I64 '[1, 2]' '[1, 4294967296]'
expect_error "id beyond int32" "$TMP/ids_huge.safetensors" "input_ids[1]" -- \
  forward --model "$FIX" --input "$TMP/ids_huge.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_neg.safetensors" I32 '[1, 3]' '[1, -1, 2]'
expect_error "negative id" "$TMP/ids_neg.safetensors" "input_ids[1]" "negative" -- \
  forward --model "$FIX" --input "$TMP/ids_neg.safetensors" --out "$OUT"

corrupt ids "$TMP/no_ids.safetensors" I64 '[1, 3]' '[1, 2, 3]' tokens
expect_error "missing input_ids" "$TMP/no_ids.safetensors" "input_ids" -- \
  forward --model "$FIX" --input "$TMP/no_ids.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_1d.safetensors" I64 '[6]' '[1, 2, 3, 4, 5, 6]'
expect_error "1-D input_ids" "$TMP/ids_1d.safetensors" "shape [B, S]" -- \
  forward --model "$FIX" --input "$TMP/ids_1d.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_3d.safetensors" I64 '[1, 2, 3]' '[1, 2, 3, 4, 5, 6]'
expect_error "3-D input_ids" "$TMP/ids_3d.safetensors" "shape [B, S]" -- \
  forward --model "$FIX" --input "$TMP/ids_3d.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_empty.safetensors" I64 '[2, 0]' '[]'
expect_error "empty input_ids" "$TMP/ids_empty.safetensors" "shape [B, S]" -- \
  forward --model "$FIX" --input "$TMP/ids_empty.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_f32.safetensors" F32 '[1, 2]' '[1.0, 2.0]'
expect_error "F32 input_ids" "$TMP/ids_f32.safetensors" "I64 or I32" -- \
  forward --model "$FIX" --input "$TMP/ids_f32.safetensors" --out "$OUT"

head -c 20 "$IN" >"$TMP/ids_truncated.safetensors"
expect_error "truncated input file" "$TMP/ids_truncated.safetensors" -- \
  forward --model "$FIX" --input "$TMP/ids_truncated.safetensors" --out "$OUT"

expect_error "no such input file" "$TMP/absent.safetensors" "cannot open" -- \
  forward --model "$FIX" --input "$TMP/absent.safetensors" --out "$OUT"

corrupt ids "$TMP/ids_s1.safetensors" I64 '[2, 1]' '[1, 2]'
expect_error "nll on 1-token sequences" "at least 2 tokens" -- \
  forward --model "$FIX" --input "$TMP/ids_s1.safetensors" --out "$OUT" --grad nll

expect_error "output directory missing" "$TMP/no/such/dir/out.safetensors" -- \
  forward --model "$FIX" --input "$IN" --out "$TMP/no/such/dir/out.safetensors"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "bad_input: all cases passed"
