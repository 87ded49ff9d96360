#!/usr/bin/env bash
# A bounded load test of `wattmoe serve` on loopback (bench/serve_load.py): 64 concurrent clients, 384 requests
# (every other one streamed), stopping by itself; every request answered with usage.energy_j, no errors, none lost,
# the server's resident memory flat after warm-up (growth under 8 MB; not judged in a sanitizer build); then p50/p99
# latency and tokens/s are printed. The benchmark itself runs larger (docs/serve.md).
# Usage: bash serve_load.sh <wattmoe> <source-dir> [unused]
W=${1:?usage: serve_load.sh <wattmoe> <source-dir>}
SRC=${2:?usage: serve_load.sh <wattmoe> <source-dir>}
. "$(dirname "$0")/lib.sh"

SLACK=8
if [ "${WATTMOE_SANITIZED:-0}" = 1 ]; then  # ASan's quarantine keeps freed memory resident (256 MB): not judged there
  SLACK=1000000
  echo "sanitizer build: resident memory is reported, not judged"
fi
start_server --max-batch 8 --max-queue 64
python3 "$SRC/bench/serve_load.py" --url "$URL" --concurrency 64 --requests 384 --max-tokens 24 --stream-every 2 \
  --pid "$SERVER_PID" --rss-slack-mb "$SLACK" --check > "$TMP/load.json" 2> "$TMP/load.err" ||
  fail "load test: $(cat "$TMP/load.err") $(cat "$TMP/load.json")"
python3 - "$TMP/load.json" <<'PY' || fail "load summary"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"load: {r['ok']}/{r['requests']} ok, {r['concurrency']} clients, p50 {r['latency_s']['p50']*1e3:.1f} ms, "
      f"p99 {r['latency_s']['p99']*1e3:.1f} ms, {r['tokens_per_s']:.0f} completion tokens/s, "
      f"RSS {r['rss_mb']['after_warmup']:.1f} -> {r['rss_mb']['end']:.1f} MB (this machine, CPU, simulated energy)")
assert r["ok"] == r["requests"] and not r["errors"] and r["lost"] == 0 and r["memory_flat"], r
PY
curl -s "$URL/metrics" | grep -q '^wattmoe_requests_total{outcome="ok"} 384$' || fail "/metrics does not count 384 ok"
stop_server
[ "$SERVER_RC" = 0 ] || fail "the server exited with $SERVER_RC after SIGTERM (expected 0)"
finish
