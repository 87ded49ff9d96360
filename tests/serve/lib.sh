# Shared by the serve tests: start `wattmoe serve` on a free loopback port, wait until /health answers, and always
# stop it (SIGTERM, then SIGKILL after 15 s) when the test exits. Source it after setting W (the wattmoe binary).
#   start_server [serve flags...]   sets SERVER_PID, PORT, URL; server stdout/stderr in $TMP/server.{out,err};
#                                   --min-free-host-mb 0 unless the flags set it
#   stop_server                     SIGTERM and wait; sets SERVER_RC (the exit status)
#   fail MESSAGE                    counts a failure (the test exits 1 at the end when any)
set -u
unset WATTMOE_LOG
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wattmoe_serve_test.XXXXXX")
SERVER_PID=""
SERVER_RC=""
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

start_server() {
  rm -f "$TMP/port"
  local mem=(--min-free-host-mb 0)  # a loaded CI machine must not look like memory pressure, unless a test says so
  case " $* " in *" --min-free-host-mb "*) mem=() ;; esac
  "$W" serve --port 0 --port-file "$TMP/port" "${mem[@]}" "$@" > "$TMP/server.out" 2> "$TMP/server.err" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    [ -s "$TMP/port" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "FAIL: the server exited at start:"; cat "$TMP/server.err"; exit 1; }
    sleep 0.1
  done
  [ -s "$TMP/port" ] || { echo "FAIL: the server wrote no port in 30 s"; cat "$TMP/server.err"; exit 1; }
  PORT=$(cat "$TMP/port")
  URL="http://127.0.0.1:$PORT"
  for _ in $(seq 100); do
    curl -sf "$URL/health" > /dev/null && return 0
    sleep 0.1
  done
  echo "FAIL: /health did not answer"; cat "$TMP/server.err"; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID"
  SERVER_RC=$?
  SERVER_PID=""
}

finish() {
  if [ "$failures" -gt 0 ]; then
    echo "--- server stderr (last lines)"; tail -n 20 "$TMP/server.err" 2>/dev/null
    echo "$failures failure(s)"; exit 1
  fi
  echo "OK"
}
