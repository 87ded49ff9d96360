# Sourced by the CLI tests that check how a command refuses a device it cannot use (device_flag.sh, run_plant.sh,
# run_device.sh). Needs $ERR_DIR, a scratch directory. Defines:
#   fail MSG...               count a failure and print it
#   expect_error PHRASE cmd...  run cmd with every GPU hidden (CUDA_VISIBLE_DEVICES="", so a test means the same on a
#                             machine that has one) and require a clean refusal: exit 1..127 (never a signal), exactly
#                             one "wattmoe: error:" line on stderr, containing PHRASE (a grep pattern), and no
#                             internal check failure. Returns 1 when cmd succeeded, so callers can skip later checks.
#   finish NAME               print the verdict and exit 1 on any failure
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

expect_error() {
  local phrase=$1; shift
  CUDA_VISIBLE_DEVICES="" "$@" > "$ERR_DIR/out" 2> "$ERR_DIR/err"; local rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then fail "expected a clean failure, got rc=$rc: $*"; return 1; fi
  grep -q "^wattmoe: error: .*$phrase" "$ERR_DIR/err" || fail "missing '$phrase' for '$*' in: $(cat "$ERR_DIR/err")"
  if grep -qi "check failed\|internal" "$ERR_DIR/err"; then fail "internal check in: $(cat "$ERR_DIR/err")"; fi
  [ "$(grep -c '^wattmoe: error:' "$ERR_DIR/err")" -eq 1 ] || fail "expected one error line: $(cat "$ERR_DIR/err")"
  return 0
}

finish() {
  if [ "$failures" -ne 0 ]; then echo "$1: $failures failure(s)" >&2; exit 1; fi
  echo "$1: all checks passed"
}
