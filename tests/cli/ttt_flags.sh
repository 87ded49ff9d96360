#!/usr/bin/env bash
# `wattmoe run`: a --ttt-* or --lora-* flag without --ttt would do nothing, so it is refused with one error line naming
# the flag and saying it needs --ttt; with --ttt the same flags run.
# Usage: bash ttt_flags.sh <path-to-wattmoe> <source-dir>
set -u
BIN=${1:?usage: ttt_flags.sh <wattmoe> <source-dir>}
SRC=${2:?usage: ttt_flags.sh <wattmoe> <source-dir>}
ERR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_ttt_flags.XXXXXX")
trap 'rm -rf "$ERR_DIR"' EXIT
source "$SRC/tests/cli/lib/expect_error.sh"
for i in 1 2 3 4 5 6; do
  echo "In the beginning God created the heaven and the earth. And the earth was without form, and void."
done > "$ERR_DIR/text.txt"
RUN=(run --model "$SRC/models/kjv-small" --data "$ERR_DIR/text.txt" --max-tokens 200 --seq 32)

expect_error "--ttt-lr requires --ttt" "$BIN" "${RUN[@]}" --ttt-lr 1e-2
expect_error "--ttt-groups requires --ttt" "$BIN" "${RUN[@]}" --ttt-groups router,norms
expect_error "--ttt-teacher requires --ttt" "$BIN" "${RUN[@]}" --ttt-teacher
expect_error "--ttt-trigger requires --ttt" "$BIN" "${RUN[@]}" --power-budget-w 300 --ttt-trigger power
expect_error "--lora-rank requires --ttt" "$BIN" "${RUN[@]}" --lora-rank 4
# Every --ttt-*/--lora-* flag of run's help says so.
"$BIN" run --help > "$ERR_DIR/help"
n_flags=$(grep -cE '^ +--(ttt-|lora-)' "$ERR_DIR/help")
n_needs=$(grep -E '^ +--(ttt-|lora-)' "$ERR_DIR/help" | grep -c 'Needs: --ttt')
[ "$n_flags" -ge 30 ] && [ "$n_flags" -eq "$n_needs" ] || fail "$n_needs of $n_flags --ttt-/--lora- flags need --ttt"

# With --ttt they run.
"$BIN" "${RUN[@]}" --ttt --ttt-groups router,norms,lora --lora-rank 2 --ttt-lr 1e-2 --ttt-teacher \
  --summary "$ERR_DIR/s.json" 2> "$ERR_DIR/err" || fail "run --ttt with --ttt-* flags failed: $(cat "$ERR_DIR/err")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["ttt"]["lora_rank"] == 2, s["ttt"]' \
  "$ERR_DIR/s.json" || fail "the summary does not show the --ttt run's settings"

finish ttt_flags.sh
