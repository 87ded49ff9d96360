#!/usr/bin/env bash
# `wattmoe serve` under bad input and pressure, with curl and python3's standard library: malformed JSON, wrong
# types, unknown model, a prompt as long as the context, max_tokens <= 0, unsupported fields, an oversized body, an
# unknown endpoint and a bad budget change each get a 4xx JSON error naming the problem while the server keeps
# serving; a full queue gets 429 with Retry-After (and the queued request is still answered); a streaming client that
# disconnects is cancelled without hurting the request beside it; SIGTERM drains the in-flight stream to its end,
# answers new requests 503, and the process exits 0; under memory pressure new requests get 429 (code memory). --min-step-s 0.02 paces the CPU like a slower device so these
# overlaps are deterministic. Usage: bash serve_bad_input.sh <wattmoe> <source-dir> [unused]
W=${1:?usage: serve_bad_input.sh <wattmoe> <source-dir>}
. "$(dirname "$0")/lib.sh"

start_server --max-batch 2 --max-queue 1 --min-step-s 0.02 --max-body-bytes 4096

# expect STATUS TEXT METHOD PATH [BODY]: the status, a JSON {"error": {"message": ...}} containing TEXT.
expect() {
  local status=$1 text=$2 method=$3 path=$4 body=${5:-}
  local got
  if [ -n "$body" ]; then
    got=$(curl -s -o "$TMP/body" -w '%{http_code}' -X "$method" "$URL$path" -H 'Content-Type: application/json' \
          --data-binary "$body")
  else
    got=$(curl -s -o "$TMP/body" -w '%{http_code}' -X "$method" "$URL$path")
  fi
  [ "$got" = "$status" ] || { fail "$method $path $body: HTTP $got, expected $status: $(head -c 300 "$TMP/body")"; return; }
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["error"]["message"]; sys.exit(0 if sys.argv[2] in m else 1)' \
    "$TMP/body" "$text" || fail "$method $path: expected a JSON error containing '$text', got: $(head -c 300 "$TMP/body")"
}
C=/v1/completions
expect 400 "not valid JSON" POST $C '{"model": "kjv-small", "prompt": '
expect 400 "must be a JSON object" POST $C '"just a string"'
expect 400 "max_tokens: expected an integer" POST $C '{"model": "kjv-small", "prompt": "x", "max_tokens": "10"}'
expect 400 "temperature: expected a number" POST $C '{"model": "kjv-small", "prompt": "x", "temperature": "hot"}'
expect 400 "stream: expected true or false" POST $C '{"model": "kjv-small", "prompt": "x", "stream": 1}'
expect 404 "'gpt-4' is not served here" POST $C '{"model": "gpt-4", "prompt": "x"}'
long=$(printf 'a%.0s' $(seq 200))
expect 400 "but the context holds 128" POST $C "{\"model\": \"kjv-small\", \"prompt\": \"$long\"}"
expect 400 "max_tokens: expected an integer in [1," POST $C '{"model": "kjv-small", "prompt": "x", "max_tokens": 0}'
expect 400 "max_tokens: expected an integer in [1," POST $C '{"model": "kjv-small", "prompt": "x", "max_tokens": -5}'
expect 400 "only n = 1" POST $C '{"model": "kjv-small", "prompt": "x", "n": 3}'
expect 400 "routing.k_max" POST $C '{"model": "kjv-small", "prompt": "x", "routing": {"k_max": "two"}}'
expect 400 "routing:" POST $C '{"model": "kjv-small", "prompt": "x", "routing": {"policy": "fastest"}}'
expect 400 "messages[0].role" POST /v1/chat/completions '{"model": "kjv-small", "messages": [{"role": "x", "content": "y"}]}'
big=$(printf '{"model": "kjv-small", "prompt": "%s"}' "$(head -c 10000 /dev/zero | tr '\0' 'a')")
expect 413 "larger than 4096 bytes" POST $C "$big"
expect 404 "no such endpoint: GET /v2/nothing" GET /v2/nothing
expect 400 "power_w and energy_j_per_token are exclusive" PUT /v1/budget '{"power_w": 300, "energy_j_per_token": 1}'
expect 400 "volts: unknown field" PUT /v1/budget '{"volts": 3}'
expect 400 "control_policy" PUT /v1/budget '{"power_w": 300, "control_policy": "pray"}'
curl -sf "$URL/health" > /dev/null || fail "the server stopped answering /health after bad input"
# A budget set and cleared live.
curl -sf -X PUT "$URL/v1/budget" -d '{"power_w": 250, "control_policy": "topk"}' > "$TMP/budget.json" ||
  fail "PUT /v1/budget"
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert b["active"] and b["power_w"] == 250 and b["decision"]["policy"] == "topk", b' \
  "$TMP/budget.json" || fail "the budget did not change: $(cat "$TMP/budget.json")"
curl -sf -X PUT "$URL/v1/budget" -d '{"power_w": null}' | grep -q '"active":false' || fail "the budget did not clear"

# Pressure: overload, a disconnecting client, then SIGTERM while a stream runs.
python3 - "$URL" "$W" "$SERVER_PID" > "$TMP/pressure.log" 2>&1 <<'PY' || fail "pressure checks: $(tail -n 15 "$TMP/pressure.log")"
import http.client, json, os, re, signal, socket, subprocess, sys, threading, time
url, w, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])

def post(body, timeout=60):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    return c, c.getresponse()

def body(prompt, n, seed, stream):
    return {"model": "kjv-small", "prompt": prompt, "max_tokens": n, "temperature": 0.8, "seed": seed, "stream": stream}

def generate(prompt, n, seed):
    out = subprocess.run([w, "generate", "--prompt", prompt, "--max-new-tokens", str(n), "--temperature", "0.8", "--top-p",
                          "1", "--seed", str(seed)], capture_output=True, check=True).stdout.decode()
    return out[len(prompt):-1]

def read_stream(resp, first=None):
    """The text and usage of an SSE stream; `first` is set when the first text arrives."""
    text, usage, done = "", None, False
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        if line == b"data: [DONE]":
            done = True
            break
        ev = json.loads(line[6:])
        assert "error" not in ev, ev
        text += ev["choices"][0]["text"]
        usage = ev.get("usage") or usage
        if text and first is not None:
            first.set()
    return text, usage, done

def metric(name):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/metrics")
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", c.getresponse().read().decode(), re.M)
    return float(m.group(1)) if m else None

def health():
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/health")
    r = c.getresponse()
    return r.status, json.loads(r.read())

# 1. Overload: two long streams fill both slots, one request waits in the queue (max 1), the next gets 429.
results = {}
def stream_to_end(key, prompt, n, seed, first=None):
    c, r = post(body(prompt, n, seed, True))
    assert r.status == 200, r.status
    results[key] = read_stream(r, first)
started = [threading.Event(), threading.Event()]
runners = [threading.Thread(target=stream_to_end, args=(f"long{i}", "In the beginning", 60, i, started[i]))
           for i in range(2)]
for t in runners: t.start()
for e in started: assert e.wait(20), "the long streams did not start"
queued = {}
def queued_request():
    c, r = post(body("And God said", 5, 9, False))
    queued["status"], queued["body"] = r.status, json.loads(r.read())
q = threading.Thread(target=queued_request)
q.start()
t0 = time.time()
while health()[1]["queued"] < 1:
    assert time.time() - t0 < 10, "the third request never queued"
    time.sleep(0.01)
c, r = post(body("Too many", 5, 1, False))
assert r.status == 429, r.status
assert r.getheader("Retry-After") == "1", r.getheaders()
err = json.loads(r.read())["error"]
assert err["code"] == "queue_full" and err["type"] == "rate_limit_error", err
for t in runners + [q]: t.join()
assert queued["status"] == 200, queued
assert queued["body"]["choices"][0]["text"] == generate("And God said", 5, 9)
for i in range(2):
    text, usage, done = results[f"long{i}"]
    assert done and usage["completion_tokens"] == 60 and text == generate("In the beginning", 60, i), (i, text)
assert metric('wattmoe_requests_rejected_total{reason="queue_full"}') == 1
print("overload: 429 with Retry-After; the queued request and the running ones were answered")

# 2. A streaming client goes away after its first text; the stream beside it is not hurt.
cancelled_before = metric('wattmoe_requests_total{outcome="cancelled"}') or 0
healthy = threading.Thread(target=stream_to_end, args=("healthy", "The LORD", 70, 4))
healthy.start()
s = socket.create_connection((host, port))
req = json.dumps(body("Behold", 100, 5, True)).encode()
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
          str(len(req)).encode() + b"\r\n\r\n" + req)
buf = b""
while b'"text":"' not in buf.replace(b'"text":""', b""):
    more = s.recv(4096)
    assert more, f"the stream ended before any text: {buf[:300]!r}"
    buf += more
s.close()  # mid-stream
healthy.join()
text, usage, done = results["healthy"]
assert done and text == generate("The LORD", 70, 4), text
t0 = time.time()
while (metric('wattmoe_requests_total{outcome="cancelled"}') or 0) < cancelled_before + 1:
    assert time.time() - t0 < 10, "the disconnected stream was never cancelled"
    time.sleep(0.05)
assert health()[0] == 200
print("disconnect: cancelled at a step boundary; the other stream finished intact")

# 3. SIGTERM during a stream: it runs to its end, a new request gets 503, the process exits 0.
first = threading.Event()
last = threading.Thread(target=stream_to_end, args=("drained", "Thou shalt", 50, 6, first))
last.start()
assert first.wait(20)
os.kill(pid, signal.SIGTERM)
t0 = time.time()
while health()[0] != 503:
    assert time.time() - t0 < 5, "/health never said draining"
    time.sleep(0.01)
c, r = post(body("Late", 5, 1, False))
assert r.status == 503 and json.loads(r.read())["error"]["code"] == "draining", r.status
last.join()
text, usage, done = results["drained"]
assert done and usage["completion_tokens"] == 50 and text == generate("Thou shalt", 50, 6), text
print("SIGTERM: the in-flight stream finished, a new request got 503")
PY
wait "$SERVER_PID"
SERVER_RC=$?
SERVER_PID=""
[ "$SERVER_RC" = 0 ] || fail "the server exited with $SERVER_RC after SIGTERM (expected 0)"
grep -q '"requests"' "$TMP/server.out" || fail "no summary on stdout after SIGTERM"
grep -q "SIGTERM received" "$TMP/server.err" || fail "the log does not say SIGTERM was received"

# Memory pressure (made certain: more free host memory demanded than any machine has): new requests get 429 with
# code "memory", the metric and the log say so, and the server stays up and exits cleanly.
start_server --min-free-host-mb 1000000000
expect 429 "short of memory" POST $C '{"model": "kjv-small", "prompt": "x", "max_tokens": 2}'
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]["code"] == "memory"' "$TMP/body" ||
  fail "the memory 429 does not carry code memory: $(cat "$TMP/body")"
curl -s "$URL/metrics" > "$TMP/metrics.txt"
grep -q '^wattmoe_memory_pressure 2$' "$TMP/metrics.txt" || fail "wattmoe_memory_pressure is not 2"
grep -q '^wattmoe_requests_rejected_total{reason="memory"} 1$' "$TMP/metrics.txt" || fail "the memory refusal is not counted"
grep -q "memory pressure, refusing new requests" "$TMP/server.err" || fail "the log does not say memory pressure"
curl -sf "$URL/health" > /dev/null || fail "/health failed under memory pressure"
stop_server
[ "$SERVER_RC" = 0 ] || fail "the server under memory pressure exited with $SERVER_RC after SIGTERM (expected 0)"
finish
