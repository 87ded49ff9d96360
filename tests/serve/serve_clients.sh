#!/usr/bin/env bash
# `wattmoe serve` with real clients: the `openai` Python package (installed into a virtualenv, cached in CACHE_DIR)
# and curl — completions and chat, streaming and not, greedy and sampled, several at once (continuous batching) —
# each text equal to `wattmoe generate` with the same prompt, seed, temperature and top-p; every usage carries
# energy_j (labelled simulated) and experts_per_token; the requests' energies add up to the metered energy in
# /metrics and to the meter's own window over the same steps in the summary SIGTERM prints; the exit is clean.
# Usage: bash serve_clients.sh <wattmoe> <source-dir> [CACHE_DIR]. Needs curl, python3 with venv, and PyPI.
W=${1:?usage: serve_clients.sh <wattmoe> <source-dir> [cache-dir]}
SRC=${2:?usage: serve_clients.sh <wattmoe> <source-dir> [cache-dir]}
. "$(dirname "$0")/lib.sh"
VENV=${3:-$TMP}/serve_venv
if ! "$VENV/bin/python" -c "import openai" 2> /dev/null; then
  rm -rf "$VENV"
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check openai; } > "$TMP/pip.log" 2>&1 ||
    { echo "FAIL: could not install the openai package into a virtualenv (python3 -m venv, PyPI):"; tail -5 "$TMP/pip.log"; exit 1; }
fi

start_server --max-batch 4 --max-queue 16

"$VENV/bin/python" - "$URL" "$W" "$TMP" > "$TMP/clients.json" 2> "$TMP/clients.err" <<'PY' || fail "openai client checks: $(tail -n 15 "$TMP/clients.err")"
import json, subprocess, sys, threading
from openai import OpenAI

url, w, tmp = sys.argv[1:4]
client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
model = client.models.list().data[0].id
assert model == "kjv-small", model

def generate(prompt, n, temperature, top_p, seed):
    """wattmoe generate's continuation (it prints the prompt, the text and a newline)."""
    out = subprocess.run([w, "generate", "--prompt", prompt, "--max-new-tokens", str(n), "--temperature", str(temperature),
                          "--top-p", str(top_p), "--seed", str(seed)], capture_output=True, check=True).stdout
    out = out.decode("utf-8", "replace")
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]

def chat_prompt(content):
    return f"<|user|>\n{content}\n<|assistant|>\n"

results, errors = {}, []

def case(name, fn):
    try:
        results[name] = fn()
    except Exception as e:  # reported below
        errors.append(f"{name}: {type(e).__name__}: {e}")

def completion(prompt, n, t, p, seed, stop=None):
    r = client.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=t, top_p=p, seed=seed, stop=stop)
    return r.choices[0].text, r.choices[0].finish_reason, r.usage.model_dump()

def completion_stream(prompt, n, t, p, seed):
    text, usage, finish = "", None, None
    for c in client.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=t, top_p=p, seed=seed,
                                       stream=True):
        if c.choices:
            text += c.choices[0].text
            finish = c.choices[0].finish_reason or finish
        if c.usage:
            usage = c.usage.model_dump()
    return text, finish, usage

def chat(content, n, t, p, seed, stream):
    msgs = [{"role": "user", "content": content}]
    if not stream:
        r = client.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=t, top_p=p, seed=seed)
        assert r.choices[0].message.role == "assistant"
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.model_dump()
    text, usage, finish, roles = "", None, None, []
    for c in client.chat.completions.create(model=model, messages=msgs, max_tokens=n, temperature=t, top_p=p,
                                            seed=seed, stream=True, stream_options={"include_usage": True}):
        if c.choices:
            d = c.choices[0].delta
            roles += [d.role] if d.role else []
            text += d.content or ""
            finish = c.choices[0].finish_reason or finish
        elif c.usage:
            usage = c.usage.model_dump()
    assert roles == ["assistant"], roles
    return text, finish, usage

cases = {
    "completion_greedy": (lambda: completion("In the beginning", 40, 0, 1, 0),
                          lambda: generate("In the beginning", 40, 0, 1, 0)),
    "completion_stream_sampled": (lambda: completion_stream("And God said", 50, 0.8, 0.95, 7),
                                  lambda: generate("And God said", 50, 0.8, 0.95, 7)),
    "completion_token_ids": (lambda: completion([73, 110], 30, 1.0, 1.0, 5), lambda: generate("In", 30, 1.0, 1.0, 5)),
    "completion_stop": (lambda: completion("The LORD", 80, 0.9, 1.0, 11, stop=["\n"]),
                        lambda: generate("The LORD", 80, 0.9, 1.0, 11).split("\n")[0]),
    "chat": (lambda: chat("Hello", 30, 0.7, 1.0, 3, False),
             lambda: generate(chat_prompt("Hello"), 30, 0.7, 1.0, 3).split("\n<|")[0]),
    "chat_stream": (lambda: chat("Who art thou?", 25, 0, 1, 4, True),
                    lambda: generate(chat_prompt("Who art thou?"), 25, 0, 1, 4).split("\n<|")[0]),
}
threads = [threading.Thread(target=case, args=(k, v[0])) for k, v in cases.items()]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
usages = []
for name, (_, want) in cases.items():
    text, finish, usage = results[name]
    expected = want()
    assert text == expected, f"{name}: server {text!r} != generate {expected!r}"
    assert finish in ("stop", "length"), (name, finish)
    assert usage["energy_j"] > 0 and usage["energy_source"] == "simulated", (name, usage)
    assert usage["experts_per_token"] == 2.0, (name, usage)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], (name, usage)
    usages.append(usage)
print(json.dumps({"usages": usages}))
PY

# curl: a plain completion and a streamed chat, parsed with the standard library.
curl -sS "$URL/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model": "kjv-small", "prompt": "Blessed are", "max_tokens": 20, "temperature": 0.6, "seed": 21}' > "$TMP/curl1.json" ||
  fail "curl completion"
curl -sSN "$URL/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model": "kjv-small", "messages": [{"role": "user", "content": "Amen"}], "max_tokens": 15, "temperature": 0,
       "seed": 2, "stream": true}' > "$TMP/curl2.sse" || fail "curl streamed chat"
curl -sS "$URL/metrics" > "$TMP/metrics.txt" || fail "curl /metrics"
stop_server
[ "$SERVER_RC" = 0 ] || fail "the server exited with $SERVER_RC after SIGTERM (expected 0)"

python3 - "$W" "$TMP" <<'PY' || fail "curl, metrics and summary checks"
import json, re, subprocess, sys
w, tmp = sys.argv[1:3]
def generate(prompt, n, t, seed):
    out = subprocess.run([w, "generate", "--prompt", prompt, "--max-new-tokens", str(n), "--temperature", str(t), "--top-p",
                          "1", "--seed", str(seed)], capture_output=True, check=True).stdout.decode()
    return out[len(prompt):-1]
usages = json.load(open(f"{tmp}/clients.json"))["usages"]
r = json.load(open(f"{tmp}/curl1.json"))
assert r["object"] == "text_completion", r
assert r["choices"][0]["text"] == generate("Blessed are", 20, 0.6, 21), r
usages.append(r["usage"])
text, usage, done = "", None, False
for line in open(f"{tmp}/curl2.sse").read().split("\n\n"):
    if not line.startswith("data: "):
        continue
    data = line[6:]
    if data == "[DONE]":
        done = True
        continue
    ev = json.loads(data)
    assert ev["object"] == "chat.completion.chunk", ev
    text += ev["choices"][0]["delta"].get("content", "")
    usage = ev.get("usage") or usage
assert done and usage, "the stream did not end with usage and [DONE]"
assert text == generate("<|user|>\nAmen\n<|assistant|>\n", 15, 0, 2).split("\n<|")[0], text
usages.append(usage)
billed = sum(u["energy_j"] for u in usages)
metrics = open(f"{tmp}/metrics.txt").read()
metered = float(re.search(r'^wattmoe_energy_joules_total\{source="simulated"\} (\S+)$', metrics, re.M).group(1))
ok = float(re.search(r'^wattmoe_requests_total\{outcome="ok"\} (\S+)$', metrics, re.M).group(1))
assert ok == len(usages), (ok, len(usages))
assert abs(billed - metered) <= 1e-6 * metered, f"requests' energy {billed} J != metered {metered} J"
for name in ("wattmoe_power_watts", "wattmoe_gpu_temperature_celsius", "wattmoe_clock_event_reason_active",
             "wattmoe_joules_per_token", "wattmoe_tokens_per_second", "wattmoe_experts_per_token",
             "wattmoe_expert_tokens_total", "wattmoe_queue_length", "wattmoe_request_latency_seconds_bucket"):
    assert f"\n{name}" in metrics, name
s = json.load(open(f"{tmp}/server.out"))  # the summary printed on SIGTERM
assert s["energy_source"] == "simulated" and s["requests"] == {"ok": len(usages)}, s
assert abs(s["meter_outer_window_j"] - billed) <= 1e-6 * billed, (s["meter_outer_window_j"], billed)
print(f"{len(usages)} requests, {billed:.3f} J simulated, equal to the metered energy")
PY
finish
