#!/usr/bin/env python3
"""A bounded load test of `wattmoe serve` (or any OpenAI-compatible /v1/completions server) on loopback.

C concurrent clients send R requests in all (each client sends its next request when the last one is answered; with
--duration S none starts after S seconds), then it stops by itself and prints one JSON object: latency p50/p90/p99,
time to first byte (streaming), tokens/s, errors by kind, requests lost, and — with --pid, on Linux — the server's resident memory sampled during the run
(flat: the growth after the first quarter of the requests stays under --rss-slack-mb). With --check it exits 1 when
anything failed: an error, a lost request, a usage without energy_j, or resident memory that grew.

  python3 bench/serve_load.py --url http://127.0.0.1:8080 --concurrency 64 --requests 512 --max-tokens 32 \
      --stream-every 2 --pid $(pgrep -f 'wattmoe serve') --check

Standard library only (http.client, threads), so CI runs it without a virtualenv. bench/serve_bench.py imports
run_load.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse

PROMPTS = ["In the beginning", "And God said", "The LORD is my shepherd", "Blessed are the", "For unto us",
           "Thou shalt not", "And it came to pass", "Behold, I"]


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def percentile(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))
    return xs[i]


def one_request(host, port, model, i, max_tokens, stream, timeout):
    """Returns (ok, error kind or None, completion tokens, energy_j, latency s, first byte s)."""
    body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0.8,
            "seed": i, "stream": stream}
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            resp.read()
            return False, f"http_{resp.status}", 0, 0.0, time.perf_counter() - t0, None
        if not stream:
            j = json.loads(resp.read())
            u = j.get("usage", {})
            if "energy_j" not in u:
                return False, "no_energy_j", 0, 0.0, time.perf_counter() - t0, None
            return True, None, u["completion_tokens"], u["energy_j"], time.perf_counter() - t0, None
        first, usage, done = None, None, False
        while True:
            line = resp.readline()
            if not line:
                break
            if first is None:
                first = time.perf_counter() - t0
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                done = True
                break
            ev = json.loads(data)
            if "error" in ev:
                return False, "stream_error", 0, 0.0, time.perf_counter() - t0, first
            if ev.get("usage"):
                usage = ev["usage"]
        if not done or usage is None or "energy_j" not in usage:
            return False, "stream_incomplete", 0, 0.0, time.perf_counter() - t0, first
        return True, None, usage["completion_tokens"], usage["energy_j"], time.perf_counter() - t0, first
    except (OSError, http.client.HTTPException, ValueError) as e:
        return False, type(e).__name__, 0, 0.0, time.perf_counter() - t0, None
    finally:
        conn.close()


def run_load(host, port, model, concurrency, requests, max_tokens=32, stream_every=2, timeout=120.0,
             duration=None, pid=None, rss_slack_mb=8.0, on_stop=None):
    """Runs the load and returns the summary (the JSON main prints). requests caps how many are sent; with duration
    (seconds) no request starts after it has passed, so the run ends once those in flight are answered. on_stop, if
    given, is called once when the last request has been handed to a client (the load is at its full concurrency
    until then)."""
    lock = threading.Lock()
    next_i = [0]
    results = []
    rss = []
    stop_sampling = threading.Event()
    t0 = time.perf_counter()
    stopped = [None]  # when issuing ended: the full-concurrency part of the run is [t0, stopped]

    def sampler():
        while not stop_sampling.is_set():
            m = rss_mb(pid)
            if m is not None:
                with lock:
                    rss.append((len(results), m))
            time.sleep(0.05)

    def client():
        while True:
            with lock:
                i = next_i[0]
                late = duration is not None and time.perf_counter() - t0 >= duration
                if i >= requests or late:
                    if stopped[0] is None:
                        stopped[0] = time.perf_counter()
                        if on_stop:
                            on_stop()
                    return
                next_i[0] += 1
            stream = stream_every > 0 and i % stream_every == 0
            r = one_request(host, port, model, i, max_tokens, stream, timeout)
            with lock:
                results.append(r)

    if pid:
        threading.Thread(target=sampler, daemon=True).start()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop_sampling.set()

    sent = next_i[0]
    ok = [r for r in results if r[0]]
    errors = {}
    for r in results:
        if not r[0]:
            errors[r[1]] = errors.get(r[1], 0) + 1
    lat = [r[4] for r in ok]
    ttfb = [r[5] for r in ok if r[5] is not None]
    tokens = sum(r[2] for r in ok)
    out = {
        "requests": sent, "answered": len(results), "ok": len(ok), "errors": errors,
        "lost": sent - len(results), "concurrency": concurrency, "max_tokens": max_tokens,
        "wall_s": wall, "full_concurrency_s": (stopped[0] or t0 + wall) - t0,
        "completion_tokens": tokens, "tokens_per_s": tokens / wall if wall > 0 else None,
        "requests_per_s": len(ok) / wall if wall > 0 else None,
        "latency_s": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9), "p99": percentile(lat, 0.99),
                      "max": max(lat) if lat else None},
        "first_byte_s": {"p50": percentile(ttfb, 0.5), "p99": percentile(ttfb, 0.99)},
        "energy_j": sum(r[3] for r in ok),
    }
    flat = True
    if rss:
        # Warm-up: the first quarter of the requests (thread stacks, allocator arenas); after it, growth must stay small.
        warm = [m for n, m in rss if n >= sent // 4] or [rss[-1][1]]
        out["rss_mb"] = {"start": rss[0][1], "after_warmup": warm[0], "max": max(m for _, m in rss), "end": rss[-1][1],
                         "growth_after_warmup": max(warm) - warm[0], "samples": len(rss)}
        flat = out["rss_mb"]["growth_after_warmup"] <= rss_slack_mb
    out["memory_flat"] = flat if rss else None
    out["passed"] = not errors and out["lost"] == 0 and len(ok) == sent and sent > 0 and flat
    return out


def first_model(host, port):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/v1/models")
    model = json.loads(c.getresponse().read())["data"][0]["id"]
    c.close()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default=None, help="model id (default: the first of GET /v1/models)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--requests", type=int, default=64, help="requests in all (the most, with --duration)")
    ap.add_argument("--duration", type=float, default=None, help="send no request after this many seconds")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--stream-every", type=int, default=2, help="every Nth request streams (0: none)")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--pid", type=int, default=None, help="the server's pid, to sample its resident memory")
    ap.add_argument("--rss-slack-mb", type=float, default=8.0)
    ap.add_argument("--check", action="store_true", help="exit 1 unless every request succeeded and memory is flat")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    model = a.model or first_model(host, port)
    out = run_load(host, port, model, a.concurrency, a.requests, a.max_tokens, a.stream_every, a.timeout, a.duration,
                   a.pid, a.rss_slack_mb)
    print(json.dumps(out, indent=2))
    if a.check and not out["passed"]:
        print("serve_load: FAILED (errors, lost requests or memory growth above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
