#!/usr/bin/env bash
# One flag vocabulary (issue 19): routing p is --route-top-p (eval, run, serve) and --top-p is generate's sampling p;
# tokens to generate --max-new-tokens; profile's tokens per call --tokens-per-call / --max-tokens-per-call; seconds
# --idle-s, --min-window-s, --settle-s; budgets with their unit, --power-budget-w and --energy-budget-j-per-token. The
# old names still work as hidden aliases with one warning naming the new flag, the same result, and are refused
# together with the new one; --help lists only the new names; profile --out shows as required. --config FILE (TOML,
# a section per command) gives the same run as the flags, the command line wins over it, a misspelt key is refused;
# run's --help is grouped. --expert-precision: listed by every command that loads a model, checked, reported;
# --no-decode-graphs listed beside it and accepted.
# Usage: bash flags.sh <path-to-wattmoe> <source-dir>. Needs python3's standard library.
set -u
BIN=${1:?usage: flags.sh <wattmoe> <source-dir>}
SRC=${2:?usage: flags.sh <wattmoe> <source-dir>}
MODEL="$SRC/models/kjv-small"
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_flags.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ERR_DIR=$TMP
. "$SRC/tests/cli/lib/expect_error.sh"
head -c 3000 "$SRC/README.md" > "$TMP/text.txt"

# help CMD: its --help in $TMP/help.
help() { "$BIN" "$@" --help > "$TMP/help" 2>&1 || fail "$* --help failed"; }
lists() { grep -q -- "$1" "$TMP/help" || fail "$2 --help does not list $1"; }
hides() { grep -q -- "$1\b" "$TMP/help" && fail "$2 --help still lists $1"; }
for cmd in eval run serve; do
  help "$cmd"; lists "--route-top-p" "$cmd"; hides "--top-p " "$cmd"
done
for cmd in run serve; do
  help "$cmd"; lists "--power-budget-w" "$cmd"; lists "--energy-budget-j-per-token" "$cmd"; hides "--power-budget " "$cmd"
done
help generate; lists "--max-new-tokens" generate; lists "--top-p .*nucleus" generate; hides "--max-new " generate
help profile; lists "--out TEXT REQUIRED" profile; lists "--idle-s" profile; lists "--tokens-per-call" profile
lists "--max-tokens-per-call" profile; hides "--token-counts" profile; hides "--idle " profile
for cmd in eval generate; do
  help "$cmd"; grep -i "gradient\|optimizer" "$TMP/help" && fail "$cmd --help talks about gradients or optimizer"
done

# An old name: the same result as the new one, and exactly one warning naming the new flag.
# same_as OLD-ARGS -- NEW-ARGS -- CMD...: runs CMD with each, compares the JSON (timings dropped).
same_as() {
  local old=() new=()
  while [ "$1" != -- ]; do old+=("$1"); shift; done; shift
  while [ "$1" != -- ]; do new+=("$1"); shift; done; shift
  "$BIN" "$@" "${new[@]}" --json > "$TMP/new.json" 2> "$TMP/new.err" || { fail "${new[*]}: $(cat "$TMP/new.err")"; return; }
  "$BIN" "$@" "${old[@]}" --json > "$TMP/old.json" 2> "$TMP/old.err" || { fail "${old[*]}: $(cat "$TMP/old.err")"; return; }
  [ "$(grep -c "deprecated" "$TMP/old.err")" -eq 1 ] && grep -q -- "${old[0]} is deprecated: use ${new[0]}" "$TMP/old.err" ||
    fail "${old[0]}: expected one warning naming ${new[0]}, got: $(cat "$TMP/old.err")"
  grep -q deprecated "$TMP/new.err" && fail "${new[0]} warned: $(cat "$TMP/new.err")"
  python3 - "$TMP/old.json" "$TMP/new.json" <<'PY' || fail "${old[*]} differs from ${new[*]}"
import json, sys
T = {"seconds", "tokens_per_s", "infer_seconds", "adapt_seconds", "adapt_infer_ratio"}
a, b = ({k: v for k, v in json.load(open(p)).items() if k not in T} for p in sys.argv[1:3])
a.get("plant", {}).pop("seconds", None), b.get("plant", {}).pop("seconds", None)
assert a == b
PY
}
EV=(eval --model "$MODEL" --data "$TMP/text.txt" --max-tokens 600 --policy top_p)
same_as --top-p 0.6 -- --route-top-p 0.6 -- "${EV[@]}"
RUN=(run --model "$MODEL" --data "$TMP/text.txt" --max-tokens 600 --expert-shape 4096x14336 --allow-infeasible)
same_as --power-budget 330 -- --power-budget-w 330 -- "${RUN[@]}"
same_as --energy-budget 0.003 -- --energy-budget-j-per-token 0.003 -- "${RUN[@]}"

# generate: --max-new is --max-new-tokens; --top-p stays nucleus sampling.
G=(generate --model "$MODEL" --prompt "And God said" --seed 3 --top-p 0.9)
a=$("$BIN" "${G[@]}" --max-new-tokens 12 2> /dev/null) || fail "generate --max-new-tokens failed"
b=$("$BIN" "${G[@]}" --max-new 12 2> "$TMP/gen.err") || fail "generate --max-new failed"
[ "$a" = "$b" ] || fail "generate --max-new differs from --max-new-tokens: '$a' vs '$b'"
grep -q "max-new is deprecated: use --max-new-tokens" "$TMP/gen.err" || fail "generate --max-new: no warning"

# Old and new together: refused, naming both.
expect_error "--top-p is the old name of --route-top-p: give one of them" "$BIN" "${EV[@]}" --top-p 0.6 --route-top-p 0.6
expect_error "--max-new is the old name of --max-new-tokens" "$BIN" "${G[@]}" --max-new 3 --max-new-tokens 3
expect_error "--power-budget is the old name of --power-budget-w" "$BIN" "${RUN[@]}" --power-budget 300 \
  --power-budget-w 300
expect_error "--idle is the old name of --idle-s" "$BIN" profile --model "$MODEL" --sensor sim --out "$TMP/c.json" \
  --idle 1 --idle-s 1
expect_error "--out is required" "$BIN" profile --model "$MODEL" --sensor sim

# --config FILE: the same result as the flags; a flag given on the command line wins; bad keys and values refused.
printf '%s\n' '[run]' 'power-budget-w = 330' 'expert-shape = "4096x14336"' 'max-tokens = 600' \
  'allow-infeasible = true' > "$TMP/run.toml"
RUN0=(run --model "$MODEL" --data "$TMP/text.txt")
"$BIN" "${RUN0[@]}" --config "$TMP/run.toml" --json > "$TMP/cfg.json" 2> /dev/null || fail "run --config failed"
"$BIN" "${RUN[@]}" --power-budget-w 330 --json > "$TMP/flags.json" 2> /dev/null || fail "run with the same flags failed"
python3 - "$TMP/cfg.json" "$TMP/flags.json" <<'PY' || fail "run --config differs from the same flags"
import json, sys
T = {"seconds", "tokens_per_s", "infer_seconds", "adapt_seconds", "adapt_infer_ratio"}
a, b = ({k: v for k, v in json.load(open(p)).items() if k not in T} for p in sys.argv[1:3])
a["plant"].pop("seconds"), b["plant"].pop("seconds")
assert a == b and a["tokens"] == 600 and a["control"]["final_target"] == 330
PY
"$BIN" "${RUN0[@]}" --config "$TMP/run.toml" --max-tokens 300 --json > "$TMP/cfg2.json" 2> /dev/null
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["tokens"] == 300' "$TMP/cfg2.json" ||
  fail "a flag on the command line did not win over --config"
printf '%s\n' '[run]' 'power-budget-watts = 300' > "$TMP/typo.toml"
"$BIN" "${RUN0[@]}" --config "$TMP/typo.toml" > /dev/null 2> "$TMP/err" && fail "a misspelt --config key was accepted"
grep -q "^wattmoe: error: .*run.power-budget-watts" "$TMP/err" || fail "misspelt key: $(cat "$TMP/err")"
printf '%s\n' '[run]' 'max-tokens = -5' > "$TMP/neg.toml"
expect_error "--max-tokens: expected a number >= 0, got '-5'" "$BIN" "${RUN0[@]}" --config "$TMP/neg.toml"
# --expert-precision (every command with --device): listed, a bad name refused on each, reported in eval's and run's
# JSON; fp8 experts score differently from the unquantised model, and generate/serve take the flag.
for cmd in eval run generate serve; do
  help "$cmd"; lists "--expert-precision" "$cmd"; lists "--no-decode-graphs" "$cmd"
done
"$BIN" "${EV[@]}" --no-decode-graphs > /dev/null 2>&1 || fail "eval --no-decode-graphs (a no-op on the CPU) refused"
expect_error "--expert-precision fp4: expected bf16, fp8 or int8" "$BIN" "${EV[@]}" --expert-precision fp4
expect_error "--expert-precision fp4: expected bf16, fp8 or int8" "$BIN" "${G[@]}" --max-new-tokens 2 \
  --expert-precision fp4
"$BIN" "${EV[@]}" --expert-precision fp8 --json > "$TMP/fp8.json" 2> /dev/null || fail "eval --expert-precision fp8"
"$BIN" "${EV[@]}" --json > "$TMP/bf16.json" 2> /dev/null || fail "eval without --expert-precision"
"$BIN" "${RUN[@]}" --power-budget-w 330 --expert-precision int8 --json > "$TMP/int8.json" 2> /dev/null ||
  fail "run --expert-precision int8"
python3 - "$TMP/fp8.json" "$TMP/bf16.json" "$TMP/int8.json" <<'PY' || fail "--expert-precision not applied or reported"
import json, sys
f, b, i = (json.load(open(p)) for p in sys.argv[1:4])
assert f["expert_precision"] == "fp8" and b["expert_precision"] == "bf16" and i["expert_precision"] == "int8"
assert f["bits_per_byte"] != b["bits_per_byte"] and abs(f["bits_per_byte"] / b["bits_per_byte"] - 1) < 0.01
PY

help run
for g in "Data and model:" "Output:" "Routing:" "Budget:" "Plant" "Test-time training (TTT):"; do
  grep -q "^$g" "$TMP/help" || fail "run --help has no group '$g'"
done

finish flags.sh
