#!/usr/bin/env python3
"""`wattmoe serve` as a benchmark: what issue 17 asks to be shown on the device.

1. Concurrency sweep: for each routing policy (default top-2 and `skip beta=0.5`, an energy-aware one) one server;
   for each concurrency C (default 1, 8, 32, 128 streams) a load of C clients (bench/serve_load.py's run_load) for
   --duration seconds. Per point: completion tokens/s and J/token over the part of the run at full concurrency (from
   /metrics counters scraped at its start and end), latency, experts/token, and the energy check: the sum of the
   requests' usage.energy_j against the sensor's energy counter (`wattmoe_sensor_energy_joules`: NVML's counter with
   --device cuda) over the same interval, from just before the first request to just after the last answer
   (pass: within --energy-tolerance, default 5%).
2. TTT points (--ttt-concurrency C,...): one more server with the first policy and --ttt-flags (online test-time
   training on the answered requests' texts), one point at each C streams as in 1, plus the adapter's counters over
   each point (texts processed and adapted, optimizer steps, resets, dropped texts, adaptation seconds) and the
   adaptation's share of the steps' time. Adaptation's joules are billed to no request, so this point's energy check
   is (billed + adaptation joules) against the counter.
3. Budget step under load: one server, --budget-concurrency clients throughout; --free-windows windows of
   --window-s with no budget (the unconstrained power P0; idle power read before the load), then PUT /v1/budget
   power_w = T1 = idle + f1·(P0 − idle) for --step-windows windows, then T2 = idle + f2·(P0 − idle) for as many
   (--fractions f1,f2, default 0.9,0.7). A window's power is the steps' energy over their time (the counters
   wattmoe_energy_joules_total and wattmoe_step_seconds_total: what the controller holds). Held as `wattmoe run`
   is judged: over each segment's second half, the mean within ±2% of the target and every block of 4 windows within
   ±5%.

Writes under OUT_DIR: serve_bench.jsonl (one record per point, per budget window, per budget segment), summary.json
(the points, the segments, the verdicts, the card), server_<tag>.log (each server's stderr), and prints a table.
Exit status: 0 when every request was answered without error (the verdicts on energy and holding are in the
summary, not the status), 1 otherwise, 2 for a usage error or a server that did not start or stopped answering.

  python3 bench/serve_bench.py --bin build/wattmoe --out out/serve_bench --device cuda --precision bf16
  python3 bench/serve_bench.py --bin build/wattmoe --out /tmp/sb --device cpu --concurrency 1,4 --duration 2 ...

Only the standard library and the wattmoe binary (scripts/device/session.sh's `serve` phase runs it from the packed
binaries). On the CPU the energy is the simulated GPU's (labelled so in every record).
"""
import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import first_model, run_load  # noqa: E402

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_metrics(text):
    """Prometheus text → {(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            out[(m.group(1), frozenset(LABEL.findall(m.group(2) or "")))] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    """The sum of the series of `name` whose labels include `labels` (NaN when there is none)."""
    want = set(labels.items())
    vals = [v for (n, ls), v in ms.items() if n == name and want <= ls]
    return sum(vals) if vals else float("nan")


def expert_pairs(ms):
    """(token, expert) pairs routed so far, and the number of MoE layers they span."""
    rows = [(dict(ls)["layer"], v) for (n, ls), v in ms.items() if n == "wattmoe_expert_tokens_total"]
    return sum(v for _, v in rows), len({layer for layer, _ in rows})


LIVE = set()  # servers started and not yet stopped: killed if this script is stopped (session.sh's timeout)


class Server:
    """A `wattmoe serve` on a free loopback port; stop() sends SIGTERM and waits for the drain."""

    def __init__(self, binary, flags, log_path):
        self.log_path = log_path
        port_file = log_path + ".port"
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", "--port-file", port_file] + flags,
                                     stdout=subprocess.PIPE, stderr=self.log)
        LIVE.add(self)
        t0 = time.time()
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if self.proc.poll() is not None or time.time() - t0 > 180:
                self.stop()
                raise RuntimeError(f"the server did not start (flags {' '.join(flags)}): see {log_path}")
            time.sleep(0.1)
        self.port = int(open(port_file).read())
        os.remove(port_file)
        self.model = first_model("127.0.0.1", self.port)

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"} if body is not None else {})
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {r.status}: {data[:300]!r}")
        return data

    def metrics(self):
        return parse_metrics(self.request("GET", "/metrics").decode()), time.perf_counter()

    def stop(self):
        """SIGTERM; returns the summary the server prints (or None) and its exit status."""
        LIVE.discard(self)
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.log.close()
        try:
            return json.loads(out), self.proc.returncode
        except ValueError:
            return None, self.proc.returncode


def delta(a, b, name, **labels):
    return metric(b[0], name, **labels) - metric(a[0], name, **labels)


def interval(a, b):
    """What the counters say about the interval between two scrapes."""
    e = delta(a, b, "wattmoe_energy_joules_total")
    s = delta(a, b, "wattmoe_step_seconds_total")
    counter = delta(a, b, "wattmoe_sensor_energy_joules")
    comp = delta(a, b, "wattmoe_tokens_total", kind="completion")
    fwd = delta(a, b, "wattmoe_tokens_total", kind="forward")
    pairs = expert_pairs(b[0])[0] - expert_pairs(a[0])[0]
    layers = expert_pairs(b[0])[1]
    t = b[1] - a[1]
    nan = float("nan")
    return {"seconds": t, "step_seconds": s, "steps_energy_j": e, "counter_energy_j": counter,
            "completion_tokens": comp, "forward_tokens": fwd,
            "step_power_w": e / s if s > 0 else nan, "wall_power_w": counter / t if t > 0 else nan,
            "completion_tokens_per_s": comp / t if t > 0 else nan, "forward_tokens_per_s": fwd / t if t > 0 else nan,
            "j_per_completion_token": e / comp if comp > 0 else nan, "j_per_forward_token": e / fwd if fwd > 0 else nan,
            "counter_j_per_completion_token": counter / comp if comp > 0 else nan,
            "experts_per_token": pairs / (fwd * layers) if fwd > 0 and layers else nan}


def policy_flags(spec):
    """'skip beta=0.5' → ['--policy', 'skip', '--beta', '0.5'] (keys are the routing flags, '_' for '-')."""
    words = spec.split()
    flags = ["--policy", words[0]]
    for w in words[1:]:
        k, v = w.split("=", 1)
        flags += ["--" + k.replace("_", "-"), v]
    return flags


def tag_of(spec):
    return re.sub(r"[^A-Za-z0-9.]+", "_", spec).strip("_")


def sweep_point(srv, policy, c, a, records, adapting=False):
    before = srv.metrics()
    at_stop = []
    load = run_load("127.0.0.1", srv.port, srv.model, c, a.max_requests, a.max_tokens, a.stream_every, a.timeout,
                    a.duration, srv.proc.pid, a.rss_slack_mb, on_stop=lambda: at_stop.append(srv.metrics()))
    after = srv.metrics()
    whole = interval(before, after)
    steady = interval(before, at_stop[0]) if at_stop else whole
    billed = load["energy_j"]
    counter = whole["counter_energy_j"]
    rec = {"kind": "point", "policy": policy, "concurrency": c, "source": srv.source,
           "tokens_per_s": steady["completion_tokens_per_s"], "j_per_token": steady["j_per_completion_token"],
           "j_per_forward_token": steady["j_per_forward_token"], "power_w": steady["step_power_w"],
           "experts_per_token": steady["experts_per_token"],
           "latency_s": load["latency_s"], "first_byte_s": load["first_byte_s"],
           "requests": load["requests"], "ok": load["ok"], "errors": load["errors"], "lost": load["lost"],
           "rss_mb": load.get("rss_mb"),
           "energy_check": {"billed_j": billed, "counter_j": counter, "steps_j": whole["steps_energy_j"],
                            "billed_over_counter": billed / counter if counter > 0 else None,
                            "within_tolerance": counter > 0 and abs(billed / counter - 1) <= a.energy_tolerance,
                            "interval_s": whole["seconds"]},
           "steady": steady, "whole": whole}
    records.append(rec)
    print(f"  {policy:>16} C={c:<4} {rec['tokens_per_s']:9.1f} tok/s  {rec['j_per_token']:.4g} J/token  "
          f"{rec['power_w']:.1f} W  experts/token {rec['experts_per_token']:.3f}  p50 "
          f"{(load['latency_s']['p50'] or 0) * 1e3:.0f} ms p99 {(load['latency_s']['p99'] or 0) * 1e3:.0f} ms  "
          f"{'billed (no adaptation)' if adapting else 'billed'}/counter "
          f"{rec['energy_check']['billed_over_counter'] or float('nan'):.4f}  "
          f"{load['ok']}/{load['requests']} ok", flush=True)
    return not load["errors"] and load["lost"] == 0 and load["ok"] == load["requests"] > 0


TTT_COUNTERS = {"windows": "wattmoe_ttt_windows_total", "adapted": "wattmoe_ttt_adapted_windows_total",
                "steps": "wattmoe_ttt_adaptation_steps_total", "resets": "wattmoe_ttt_resets_total",
                "dropped": "wattmoe_ttt_dropped_total", "adaptation_s": "wattmoe_ttt_adaptation_seconds_total",
                "adaptation_j": "wattmoe_ttt_energy_joules_total"}


def ttt_points(a, base_flags, policy, records):
    """The sweep's points at each --ttt-concurrency on one server adapting online; each point's adapter counters."""
    srv = start(a, base_flags + a.ttt_flags.split(), "ttt")
    all_ok, per_point = True, []
    for c in a.ttt_concurrency:
        before = srv.metrics()
        all_ok &= sweep_point(srv, policy + " +ttt", c, a, records, adapting=True)
        after = srv.metrics()
        ttt = {k: delta(before, after, name) for k, name in TTT_COUNTERS.items()}
        steps_s = delta(before, after, "wattmoe_step_seconds_total")
        ttt["adaptation_share_of_step_time"] = ttt["adaptation_s"] / steps_s if steps_s > 0 else None
        ttt["flags"] = a.ttt_flags
        rec = records[-1]
        rec["ttt"] = ttt
        # Adaptation steps are billed to no request (docs/serve.md): the counter's energy is the bills plus
        # adaptation's.
        check = rec["energy_check"]
        check["adaptation_j"] = ttt["adaptation_j"]
        if check["counter_j"] > 0:
            check["billed_over_counter"] = (check["billed_j"] + ttt["adaptation_j"]) / check["counter_j"]
            check["within_tolerance"] = abs(check["billed_over_counter"] - 1) <= a.energy_tolerance
        print(f"  ttt C={c}: {ttt['windows']:.0f} texts, {ttt['adapted']:.0f} adapted, {ttt['steps']:.0f} steps, "
              f"{ttt['resets']:.0f} resets, {ttt['dropped']:.0f} dropped, {ttt['adaptation_s']:.3f} s and "
              f"{ttt['adaptation_j']:.1f} J adapting ({100 * (ttt['adaptation_share_of_step_time'] or 0):.1f}% of "
              f"the steps' time); (billed + adaptation)/counter {check['billed_over_counter'] or float('nan'):.4f}",
              flush=True)
        all_ok &= ttt["windows"] > 0
        per_point.append({"concurrency": c} | ttt)
    summary, rc = srv.stop()
    return all_ok and rc == 0, {"policy": policy, "exit": rc, "summary": summary, "ttt": per_point}


def blocks(ws, n=4):
    """Power over consecutive n-window spans: their steps' energy over their steps' time."""
    return [sum(w["steps_energy_j"] for w in ws[i:i + n]) / sum(w["step_seconds"] for w in ws[i:i + n])
            for i in range(0, len(ws) - n + 1, n) if sum(w["step_seconds"] for w in ws[i:i + n]) > 0]


def budget_step(a, base_flags, records):
    srv = start(a, base_flags + ["--control-policy", a.control_policy, "--control-gains", a.control_gains]
                + (["--control-deadband", str(a.control_deadband)] if a.control_deadband is not None else [])
                + (["--ladder-dwell", str(a.ladder_dwell)] if a.ladder_dwell is not None else []), "budget")
    idle = []
    time.sleep(1.0)  # after the warm-up's last step
    for _ in range(5):
        idle.append(metric(srv.metrics()[0], "wattmoe_sensor_power_watts"))
        time.sleep(0.4)
    idle = [x for x in idle if x == x]
    idle_w = statistics.median(idle) if idle else 0.0  # NaN before the sensor's first sample
    total = a.free_windows + 2 * a.step_windows
    result = {}
    load_thread = threading.Thread(target=lambda: result.update(run_load(
        "127.0.0.1", srv.port, srv.model, a.budget_concurrency, 10 ** 9, a.max_tokens, a.stream_every, a.timeout,
        total * a.window_s + 0.5, srv.proc.pid, a.rss_slack_mb)))
    load_thread.start()
    first = srv.metrics()
    prev, windows, targets, t0 = first, [], [], first[1]
    target = None
    for k in range(total):
        if k == a.free_windows:
            free = [w["step_power_w"] for w in windows[min(3, a.free_windows - 1):]]
            p0 = statistics.mean(free)
            t1, t2 = (idle_w + f * (p0 - idle_w) for f in a.fractions)
            targets = [t1, t2]
            target = t1
            srv.request("PUT", "/v1/budget", {"power_w": target, "control_policy": a.control_policy})
        elif k == a.free_windows + a.step_windows:
            target = targets[1]
            srv.request("PUT", "/v1/budget", {"power_w": target})
        time.sleep(max(0.0, t0 + (k + 1) * a.window_s - time.perf_counter()))
        now = srv.metrics()
        decision = json.loads(srv.request("GET", "/v1/budget")).get("decision") or {}
        w = interval(prev, now)
        w.update({"kind": "window", "window": k, "target_w": target, "source": srv.source,
                  "effort_u": metric(now[0], "wattmoe_control_effort"),
                  "rung": metric(now[0], "wattmoe_control_rung"),
                  "batch_scale": metric(now[0], "wattmoe_control_batch_scale"),
                  "running": metric(now[0], "wattmoe_running_sequences"),
                  "queued": metric(now[0], "wattmoe_queue_length"),
                  "temperature_c": metric(now[0], "wattmoe_gpu_temperature_celsius"),
                  "clock_event_reasons": metric(now[0], "wattmoe_clock_event_reasons"),
                  "expert_tier_bytes": metric(now[0], "wattmoe_expert_tier_bytes"),  # the ladder's tier level
                  "tier_switches": metric(now[0], "wattmoe_expert_tier_switches_total"),
                  "kp": decision.get("kp"), "ki": decision.get("ki")})  # the gains the loop runs with now
        windows.append(w)
        records.append(w)
        prev = now
    load_thread.join()
    last = srv.metrics()
    summary, rc = srv.stop()
    segments = []
    for i, t in enumerate(targets):
        s = a.free_windows + i * a.step_windows
        seg = windows[s:s + a.step_windows]
        tail = seg[len(seg) // 2:]
        # A window without a finished step (the server stalled, e.g. switching tiers) has no step power: it is
        # counted as stalled, and a segment with one is not held.
        p = [w["step_power_w"] for w in tail if w["step_seconds"] > 0]
        stalled = len(tail) - len(p)
        busy = sum(w["step_seconds"] for w in tail)
        mean = sum(w["steps_energy_j"] for w in tail) / busy if busy > 0 else float("nan")
        bl = blocks(tail)
        worst_block = max((abs(b - t) / t for b in bl), default=float("nan"))
        seg_rec = {"kind": "budget_segment", "target_w": t, "windows": [s, s + len(seg)], "source": srv.source,
                   "mean_w": mean, "mean_error": (mean - t) / t,
                   "worst_window_error": max((abs(x - t) / t for x in p), default=float("nan")),
                   "stalled_windows": stalled, "block_powers_w": bl, "worst_block_error": worst_block,
                   "held": stalled == 0 and abs(mean - t) / t <= 0.02 and bool(bl) and worst_block <= 0.05,
                   "experts_per_token": statistics.mean(w["experts_per_token"] for w in tail),
                   "expert_tier_bytes": statistics.mean(w["expert_tier_bytes"] for w in tail),
                   "tokens_per_s": statistics.mean(w["completion_tokens_per_s"] for w in tail)}
        segments.append(seg_rec)
        records.append(seg_rec)
    whole = interval(first, last)
    billed = result.get("energy_j", 0.0)
    out = {"idle_w": idle_w, "unconstrained_w": p0 if targets else None, "targets_w": targets,
           "concurrency": a.budget_concurrency, "window_s": a.window_s, "control_policy": a.control_policy,
           "control_gains": a.control_gains, "control_deadband": a.control_deadband, "ladder_dwell": a.ladder_dwell,
           "segments": segments,
           "load": {k: result.get(k) for k in ("requests", "ok", "errors", "lost", "latency_s", "tokens_per_s")},
           "energy_check": {"billed_j": billed, "counter_j": whole["counter_energy_j"],
                            "billed_over_counter": billed / whole["counter_energy_j"]
                            if whole["counter_energy_j"] > 0 else None},
           "server_exit": rc, "server_summary": summary}
    print(f"  budget: idle {idle_w:.1f} W, unconstrained {out['unconstrained_w']:.1f} W under load of "
          f"{a.budget_concurrency}", flush=True)
    for s in segments:
        stalled = f", {s['stalled_windows']} windows without a step" if s["stalled_windows"] else ""
        print(f"  budget {s['target_w']:.1f} W: mean {s['mean_w']:.1f} W ({100 * s['mean_error']:+.2f}%), worst "
              f"4-window block {100 * s['worst_block_error']:.2f}%, experts/token {s['experts_per_token']:.3f}, "
              f"expert bytes/weight {s['expert_tier_bytes']:.2f}{stalled}: {'held' if s['held'] else 'NOT held'}",
              flush=True)
    ok = bool(result) and not result["errors"] and result["lost"] == 0 and rc == 0
    return out, ok


def start(a, flags, tag):
    srv = Server(a.bin, flags, os.path.join(a.out, f"server_{tag}.log"))
    m = srv.metrics()[0]
    srv.source = next((dict(ls)["source"] for (n, ls) in m if n == "wattmoe_info"), "unknown")
    # Warm-up: first requests (allocation, kernels' first launch) outside every measurement.
    run_load("127.0.0.1", srv.port, srv.model, min(8, a.max_batch), 16, 8, 2, a.timeout)
    return srv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the wattmoe binary")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--model", default=None, help="model directory (default: wattmoe's default, the shipped model)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default=None, help="fp32 | bf16 (default: wattmoe's)")
    ap.add_argument("--policies", default="topk k_max=2;skip beta=0.5",
                    help="';'-separated routing policies: NAME key=value ... (keys as routing flags)")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of full-concurrency load per point")
    ap.add_argument("--max-requests", type=int, default=100000, help="cap on requests per point")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--stream-every", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--rss-slack-mb", type=float, default=64.0)
    ap.add_argument("--energy-tolerance", type=float, default=0.05)
    ap.add_argument("--ttt-concurrency", default="",
                    help="streams of the TTT points, comma-separated, on one adapting server (empty: none)")
    ap.add_argument("--ttt-flags", default="--ttt --ttt-groups router,norms,lora --lora-rank 4",
                    help="the TTT server's flags")
    ap.add_argument("--budget-concurrency", type=int, default=32, help="0: no budget step")
    ap.add_argument("--control-policy", default="skip")
    ap.add_argument("--control-gains", default="default", choices=["default", "auto"],
                    help="the budget server's --control-gains (auto: PI gains from the measured plant gain)")
    ap.add_argument("--control-deadband", type=float, default=None,
                    help="the budget server's --control-deadband (default: the server's)")
    ap.add_argument("--ladder-dwell", type=int, default=None,
                    help="the budget server's --ladder-dwell (default: the server's)")
    ap.add_argument("--window-s", type=float, default=1.0)
    ap.add_argument("--free-windows", type=int, default=12)
    ap.add_argument("--step-windows", type=int, default=30)
    ap.add_argument("--fractions", default="0.9,0.7", help="budget targets as fractions of (P0 - idle) above idle")
    ap.add_argument("--server-flag", action="append", default=[], help="one more flag for every server (repeat)")
    a = ap.parse_args()
    try:
        conc = [int(x) for x in a.concurrency.split(",") if x]
        a.ttt_concurrency = [int(x) for x in a.ttt_concurrency.split(",") if x]
        a.fractions = [float(x) for x in a.fractions.split(",")]
        policies = [p.strip() for p in a.policies.split(";") if p.strip()]
        assert conc and min(conc + a.ttt_concurrency) > 0 and len(a.fractions) == 2 and policies
        assert a.free_windows >= 2 and a.step_windows >= 8
    except (ValueError, AssertionError):
        ap.error("bad --concurrency, --ttt-concurrency, --fractions, --policies, --free-windows (>= 2) or "
                 "--step-windows (>= 8)")
    os.makedirs(a.out, exist_ok=True)
    a.max_batch = max(conc + [a.budget_concurrency] + a.ttt_concurrency)
    base = ["--device", a.device, "--max-batch", str(a.max_batch), "--max-queue", str(2 * a.max_batch)]
    base += ["--model", a.model] if a.model else []
    base += ["--precision", a.precision] if a.precision else []
    base += a.server_flag
    card = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip() \
        if a.device == "cuda" else "cpu (simulated GPU energy)"
    print(f"serve_bench: {card}; policies {policies}; concurrency {conc}; {a.duration} s per point", flush=True)
    records, points_ok, servers = [], True, []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        for p in policies:
            srv = start(a, base + policy_flags(p), tag_of(p))
            for c in conc:
                points_ok &= sweep_point(srv, p, c, a, records)
            summary, rc = srv.stop()
            servers.append({"policy": p, "exit": rc, "summary": summary})
            points_ok &= rc == 0
        if a.ttt_concurrency:
            ok, ttt_server = ttt_points(a, base + policy_flags(policies[0]), policies[0], records)
            servers.append(ttt_server)
            points_ok &= ok
        budget = None
        if a.budget_concurrency > 0:
            budget, ok = budget_step(a, base + policy_flags(policies[0]), records)
            points_ok &= ok
    except (RuntimeError, OSError) as e:
        print(f"serve_bench: {e}", file=sys.stderr)
        return 2
    finally:
        for srv in list(LIVE):
            srv.proc.kill()
        with open(os.path.join(a.out, "serve_bench.jsonl"), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    points = [r for r in records if r["kind"] == "point"]
    out = {"card": card, "device": a.device, "model": a.model, "precision": a.precision,
           "source": points[0]["source"] if points else None, "policies": policies, "concurrency": conc,
           "duration_s": a.duration, "max_tokens": a.max_tokens,
           "points": [{k: r[k] for k in ("policy", "concurrency", "tokens_per_s", "j_per_token", "power_w",
                                         "experts_per_token", "latency_s", "ok", "requests", "errors", "lost",
                                         "energy_check")} | ({"ttt": r["ttt"]} if "ttt" in r else {})
                      for r in points],
           "energy_within_tolerance": all(r["energy_check"]["within_tolerance"] for r in points),
           "budget": budget, "budget_held": all(s["held"] for s in budget["segments"]) if budget else None,
           "servers": servers, "all_requests_answered": points_ok}
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"serve_bench: energy billed vs counter within {100 * a.energy_tolerance:.0f}% at every point: "
          f"{out['energy_within_tolerance']}; budget held: {out['budget_held']}; every request answered: "
          f"{points_ok} ({out['source']})")
    return 0 if points_ok else 1


if __name__ == "__main__":
    sys.exit(main())
