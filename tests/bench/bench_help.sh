#!/usr/bin/env bash
# A benchmark executable answers --help and -h with a usage line on stdout and exit 0 (never an abort), and refuses a
# bad argument with one "error:" line and a non-zero exit below 128 (no signal).
# Usage: bash bench_help.sh <path-to-benchmark> [BAD_ARG...]   (bench/CMakeLists.txt registers it for each one)
set -u
BIN=${1:?usage: bench_help.sh <benchmark> [bad-arg...]}; shift
failures=0
ERR=$(mktemp "${TMPDIR:-/tmp}/bench_help.XXXXXX")
trap 'rm -f "$ERR"' EXIT
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
for flag in --help -h; do
  out=$(timeout -s KILL 30 "$BIN" "$flag" 2>&1); rc=$?
  [ $rc -eq 0 ] || fail "$flag exited $rc: $out"
  grep -q "^usage: $(basename "$BIN")" <<<"$out" || fail "$flag printed no usage line: $out"
done
for bad in "$@"; do
  timeout -s KILL 30 "$BIN" $bad > /dev/null 2> "$ERR"; rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "'$bad': expected a clean failure, got rc=$rc"; fi
  grep -q "error:" "$ERR" || fail "'$bad': no error line: $(cat "$ERR")"
done
if [ "$failures" -ne 0 ]; then echo "bench_help.sh $(basename "$BIN"): $failures failure(s)" >&2; exit 1; fi
echo "bench_help.sh $(basename "$BIN"): all checks passed"
