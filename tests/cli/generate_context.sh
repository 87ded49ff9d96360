#!/usr/bin/env bash
# `wattmoe generate`: output cut by the context before --max-new-tokens tokens gets one warning on stderr naming the tokens
# generated and --max-new-tokens (and the context); output that --max-new-tokens ends gets none.
# Usage: bash generate_context.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: generate_context.sh <wattmoe> <source-dir>}
SRC=${2:?usage: generate_context.sh <wattmoe> <source-dir>}
ERR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_generate_context.XXXXXX")
trap 'rm -rf "$ERR_DIR"' EXIT
source "$SRC/tests/cli/lib/expect_error.sh"
unset WATTMOE_LOG
GEN=("$BIN" generate --model "$SRC/models/kjv-small" --prompt "In the beginning" --temperature 0)

# The shipped model reads bytes: a 16-token prompt in a 24-token context leaves room for 8 of the 50 asked for.
"${GEN[@]}" --context 24 --max-new-tokens 50 > "$ERR_DIR/out" 2> "$ERR_DIR/err" || fail "generate failed: $(cat "$ERR_DIR/err")"
grep -q "^\[warn\] generate: 8 new tokens, fewer than --max-new-tokens 50: the context holds 24 tokens" "$ERR_DIR/err" ||
  fail "no context warning naming 8 and --max-new-tokens 50: $(cat "$ERR_DIR/err")"
[ "$(grep -c '^\[warn\]' "$ERR_DIR/err")" -eq 1 ] || fail "expected one warning: $(cat "$ERR_DIR/err")"
out=$(cat "$ERR_DIR/out")
[ "${#out}" -le 24 ] || fail "more than the context came out: '$out'"

# --max-new-tokens fits in the context: no warning.
"${GEN[@]}" --context 24 --max-new-tokens 5 > "$ERR_DIR/out" 2> "$ERR_DIR/err" || fail "generate failed: $(cat "$ERR_DIR/err")"
grep -q "warn" "$ERR_DIR/err" && fail "warning without a cut: $(cat "$ERR_DIR/err")"
"${GEN[@]}" --context 24 --max-new-tokens 8 > "$ERR_DIR/out" 2> "$ERR_DIR/err" || fail "generate failed: $(cat "$ERR_DIR/err")"
grep -q "warn" "$ERR_DIR/err" && fail "warning when --max-new-tokens exactly fills the context: $(cat "$ERR_DIR/err")"

finish generate_context.sh
