#!/usr/bin/env bash
# --threads N on the commands that compute sizes the CPU engine's thread pool like WATTMOE_THREADS, and wins over it;
# N < 1 (or not a whole number) is refused naming the flag. The pool logs its size at debug level.
# Usage: bash threads.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: threads.sh <wattmoe> <source-dir>}
SRC=${2:?usage: threads.sh <wattmoe> <source-dir>}
ERR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_threads.XXXXXX")
trap 'rm -rf "$ERR_DIR"' EXIT
source "$SRC/tests/cli/lib/expect_error.sh"
unset WATTMOE_THREADS
MODEL="$SRC/models/kjv-small"
printf 'In the beginning God created the heaven and the earth. And the earth was without form, and void.\n' \
  > "$ERR_DIR/text.txt"

# pool_size ENV... -- ARGS...: the pool size eval logs (WATTMOE_LOG=debug); eval's JSON kept in $ERR_DIR/eval.json.
pool_size() {
  env WATTMOE_LOG=debug "$@" > "$ERR_DIR/eval.json" 2> "$ERR_DIR/log" || { fail "eval failed: $* $(cat "$ERR_DIR/log")"; return; }
  sed -n 's/.*thread pool: \([0-9]*\) threads.*/\1/p' "$ERR_DIR/log" | head -1
}
EVAL=("$BIN" eval --model "$MODEL" --data "$ERR_DIR/text.txt" --seq 32 --json)
[ "$(pool_size "${EVAL[@]}" --threads 3)" = 3 ] || fail "--threads 3: pool of '$(pool_size "${EVAL[@]}" --threads 3)'"
bpb3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bits_per_byte"])' "$ERR_DIR/eval.json")
[ "$(pool_size WATTMOE_THREADS=2 "${EVAL[@]}")" = 2 ] || fail "WATTMOE_THREADS=2 not honoured"
[ "$(pool_size WATTMOE_THREADS=2 "${EVAL[@]}" --threads 1)" = 1 ] || fail "--threads 1 should win over WATTMOE_THREADS=2"
bpb1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bits_per_byte"])' "$ERR_DIR/eval.json")
[ "$bpb1" = "$bpb3" ] || fail "bits/byte depends on the thread count: $bpb1 (1 thread) vs $bpb3 (3 threads)"
# A bad WATTMOE_THREADS does not matter when --threads says how many.
[ "$(pool_size WATTMOE_THREADS=zero "${EVAL[@]}" --threads 2)" = 2 ] || fail "--threads 2 with WATTMOE_THREADS=zero"

# Refused on every command that takes it, naming the flag.
for n in 0 -1 two 1025; do
  expect_error "--threads" "${EVAL[@]}" --threads "$n"
done
for cmd in forward train generate run profile serve; do
  "$BIN" "$cmd" --help | grep -q -- "--threads" || fail "$cmd --help does not list --threads"
  expect_error "--threads" "$BIN" "$cmd" --threads 0
done
"$BIN" --help | grep -q "WATTMOE_THREADS" || fail "wattmoe --help does not document WATTMOE_THREADS"
grep -q "WATTMOE_THREADS" "$SRC/README.md" || fail "README.md does not document WATTMOE_THREADS"

finish threads.sh
