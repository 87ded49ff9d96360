#!/usr/bin/env python3
"""MoE layer forward: our CUDA kernels (bench/moe_layer_bench) beside PyTorch on the same card, in one run.

Paths timed, Mixtral shape by default (H=4096, I=14336, E=8, k=2, bf16, random weights of std 1/sqrt(fan_in), random
inputs of std 1):
  wattmoe   our kernels, through the moe_layer_bench binary (--ours), which prints JSON lines;
  hf_eager  transformers' MixtralSparseMoeBlock with the eager experts loop;
  grouped_hf   torch._grouped_mm through transformers' "grouped_mm" experts implementation (skipped if this
               transformers has none);
  grouped_own  torch._grouped_mm written lean here: router, one stable argsort, histc/cumsum offsets, gather, two
               grouped GEMMs (gate‖up, down), SiLU·up, weight, index_add.
Time: CUDA events around each forward, median of --reps after 3 warm-up calls. Energy: NVML's total-energy counter
(read only), sampled every ~2 ms on a thread while the forward runs back to back for --window seconds; power is the
energy between the first and last counter tick inside the window over the time between them, J/token = power × time
per forward / T (board energy, idle included). Idle power is read the same way with nothing running.
Ceilings measured in the same run: device-to-device copy bandwidth (bytes read + written) and the bf16 matmul rate
(8192^3); the roofline of a row is max(active expert weight bytes / bandwidth, FLOPs / matmul rate).
Dense rate, for T >= 512: the layer's expert FLOPs (2·T·k·3·H·I) run as plain dense GEMMs of the layer's own shapes —
[T·k, H]·[H, 2I] then [T·k, I]·[I, H], as if every (token, slot) pair went to one expert — timed like the paths
above (cuBLAS through torch.mm, bf16, preallocated outputs, no routing or activation). "% of dense rate" is that
time over ours (the same FLOPs); beside it the same against the 8192^3 matmul's rate.

  python3 bench/moe_layer_torch.py --ours build-cuda/bench/moe_layer_bench --out $OUT
"""
import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ours", help="path of moe_layer_bench (omit to time PyTorch only)")
    p.add_argument("--ours-args", default="", help="extra flags for moe_layer_bench")
    p.add_argument("--tokens", default="1,8,64,512,4096,16384")
    p.add_argument("--H", type=int, default=4096)
    p.add_argument("--I", type=int, default=14336)
    p.add_argument("--E", type=int, default=8)
    p.add_argument("--k", type=int, default=2)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--window", type=float, default=1.0, help="seconds of back-to-back forwards per energy reading")
    p.add_argument("--no-energy", action="store_true")
    p.add_argument("--paths", default="hf_eager,grouped_hf,grouped_own")
    p.add_argument("--out", default=None, help="folder for results.json and table.md")
    return p.parse_args()


# ---------------------------------------------------------------- NVML (read only)
class Nvml:
    def __init__(self):
        self.ok = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv = pynvml
            bus = None
            props = torch.cuda.get_device_properties(0)
            if hasattr(props, "pci_bus_id"):
                bus = "%08x:%02x:%02x.0" % (props.pci_domain_id, props.pci_bus_id, props.pci_device_id)
            try:
                self.h = pynvml.nvmlDeviceGetHandleByPciBusId(bus)
            except Exception:  # single-GPU machine: index 0 is the card torch uses
                self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h)
            self.ok = True
        except Exception as e:  # no NVML: timings only
            print(f"# NVML unavailable: {e}", file=sys.stderr)

    def energy_mj(self):
        return self.nv.nvmlDeviceGetTotalEnergyConsumption(self.h)


class Sampler:
    """Counter ticks (time, mJ) seen by a 2 ms polling thread."""

    def __init__(self, nvml):
        self.nvml, self.ticks, self.stop = nvml, [], False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        last = None
        while not self.stop:
            t = time.perf_counter()
            v = self.nvml.energy_mj()
            if v != last:
                self.ticks.append((t, v))
                last = v
            time.sleep(0.002)

    def power(self, t0, t1):
        self.stop = True
        self.th.join()
        inside = [(t, v) for t, v in self.ticks if t0 <= t <= t1]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 0.2:
            return None
        return (inside[-1][1] - inside[0][1]) * 1e-3 / (inside[-1][0] - inside[0][0])


def idle_power(nvml, seconds=1.5):
    torch.cuda.synchronize()
    time.sleep(0.3)
    s = Sampler(nvml)
    t0 = time.perf_counter()
    time.sleep(seconds)
    return s.power(t0, time.perf_counter())


# ---------------------------------------------------------------- timing helpers
def time_fn(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    ms.sort()
    return ms[len(ms) // 2], ms[int(0.1 * (len(ms) - 1) + 0.5)], ms[int(0.9 * (len(ms) - 1) + 0.5)]


def energy_fn(fn, nvml, window):
    torch.cuda.synchronize()
    s = Sampler(nvml)
    time.sleep(0.005)
    t0 = time.perf_counter()
    n = 0
    while True:
        for _ in range(4):
            fn()
        n += 4
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        if t1 - t0 >= window:
            break
    return s.power(t0, t1), (t1 - t0) / n


def ceilings():
    n = 1 << 30  # 2 GiB of bf16 each way
    a = torch.empty(n, dtype=torch.bfloat16, device="cuda").uniform_()
    b = torch.empty_like(a)
    ms, _, _ = time_fn(lambda: b.copy_(a), 10)
    bw = 2 * n * 2 / (ms * 1e-3)
    del a, b
    x = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    y = torch.randn(8192, 8192, dtype=torch.bfloat16, device="cuda")
    ms, _, _ = time_fn(lambda: x @ y, 10)
    flops = 2 * 8192**3 / (ms * 1e-3)
    del x, y
    torch.cuda.empty_cache()
    return bw, flops


def dense_equal_ms(args, T):
    """Median ms of the layer's expert FLOPs as two dense GEMMs of its own shapes (see the module docstring)."""
    R, H, I = T * args.k, args.H, args.I
    g = torch.Generator(device="cuda").manual_seed(7)
    x = torch.randn(R, H, dtype=torch.bfloat16, device="cuda", generator=g)
    h = torch.randn(R, I, dtype=torch.bfloat16, device="cuda", generator=g)
    w13 = torch.randn(H, 2 * I, dtype=torch.bfloat16, device="cuda", generator=g) / math.sqrt(H)
    w2 = torch.randn(I, H, dtype=torch.bfloat16, device="cuda", generator=g) / math.sqrt(I)
    gu = torch.empty(R, 2 * I, dtype=torch.bfloat16, device="cuda")
    out = torch.empty(R, H, dtype=torch.bfloat16, device="cuda")

    def fn():
        torch.mm(x, w13, out=gu)
        torch.mm(h, w2, out=out)

    ms, _, _ = time_fn(fn, args.reps)
    del x, h, w13, w2, gu, out
    torch.cuda.empty_cache()
    return ms


# ---------------------------------------------------------------- PyTorch paths
def build_block(H, I, E, k):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = MixtralConfig(hidden_size=H, intermediate_size=I, num_local_experts=E, num_experts_per_tok=k,
                        router_jitter_noise=0.0)
    block = MixtralSparseMoeBlock(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    g = torch.Generator(device="cuda").manual_seed(1)
    with torch.no_grad():
        for _, p in block.named_parameters():
            a = math.sqrt(3.0 / p.shape[-1])
            p.uniform_(-a, a, generator=g)
    return cfg, block


def set_impl(block, cfg, impl):
    """Selects transformers' experts implementation; False if this transformers has no such switch."""
    experts = getattr(block, "experts", None)
    conf = getattr(experts, "config", None) or cfg
    if not hasattr(experts, "gate_up_proj"):
        return impl == "eager"
    try:
        conf._experts_implementation = impl
        return True
    except Exception:
        return False


def router_topk(block, x, k):
    gate = block.gate
    logits = torch.nn.functional.linear(x, gate.weight)
    probs = torch.softmax(logits, dim=-1, dtype=torch.float)
    w, idx = torch.topk(probs, k, dim=-1)
    w = (w / w.sum(dim=-1, keepdim=True)).to(x.dtype)
    return w, idx


def own_grouped_mm(block, x, k):
    """torch._grouped_mm MoE forward (the algorithm of transformers' grouped_mm experts path)."""
    ex = block.experts
    if hasattr(ex, "gate_up_proj"):
        w13, w2 = ex.gate_up_proj, ex.down_proj  # [E,2I,H], [E,H,I]
    else:
        if not hasattr(block, "_w13"):
            block._w13 = torch.stack([torch.cat([m.w1.weight, m.w3.weight], 0) for m in ex]).contiguous()
            block._w2 = torch.stack([m.w2.weight for m in ex]).contiguous()
        w13, w2 = block._w13, block._w2
    E = w13.shape[0]
    T = x.shape[0]
    w, idx = router_topk(block, x, k)
    ids = idx.reshape(-1)
    tok = torch.arange(T, device=x.device).repeat_interleave(k)
    perm = torch.argsort(ids, stable=True)
    counts = torch.histc(ids.float(), bins=E, min=0, max=E - 1)
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    xs = x[tok[perm]]
    gu = torch._grouped_mm(xs, w13.transpose(-2, -1), offs=offs)
    g, u = gu.chunk(2, dim=-1)
    h = torch.nn.functional.silu(g) * u
    y = torch._grouped_mm(h, w2.transpose(-2, -1), offs=offs)
    y = y * w.reshape(-1)[perm].unsqueeze(-1)
    out = torch.zeros_like(x)
    out.index_add_(0, tok[perm], y)
    return out


def torch_rows(args, tokens, nvml):
    cfg, block = build_block(args.H, args.I, args.E, args.k)
    rows = []
    paths = [p for p in args.paths.split(",") if p]
    gen = torch.Generator(device="cuda").manual_seed(5)
    if "grouped_own" in paths and hasattr(torch, "_grouped_mm") and set_impl(block, cfg, "eager"):
        with torch.inference_mode():  # the lean path must compute what the eager block computes
            x = torch.randn(64, args.H, dtype=torch.bfloat16, device="cuda", generator=gen)
            ref = block(x.view(1, *x.shape))
            ref = (ref[0] if isinstance(ref, tuple) else ref).view(64, -1).float()
            got = own_grouped_mm(block, x, args.k).float()
            print(f"# check grouped_own vs hf_eager, T=64: rel L2 {((got - ref).norm() / ref.norm()).item():.2e}",
                  flush=True)
    for name in paths:
        label = name
        if name == "hf_eager":
            if not set_impl(block, cfg, "eager"):
                print("# hf_eager: cannot select the eager experts path", file=sys.stderr)
                continue

            def make(x):
                return lambda: block(x.view(1, *x.shape))
        else:
            if not hasattr(torch, "_grouped_mm"):
                print("# grouped: torch._grouped_mm is missing in this torch", file=sys.stderr)
                continue
            if name == "grouped_hf":
                if not set_impl(block, cfg, "grouped_mm"):
                    print("# grouped_hf: this transformers has no grouped_mm experts path", file=sys.stderr)
                    continue

                def make(x):
                    return lambda: block(x.view(1, *x.shape))
            else:
                set_impl(block, cfg, "eager")

                def make(x):
                    return lambda: own_grouped_mm(block, x, args.k)
        for T in tokens:
            x = torch.randn(T, args.H, dtype=torch.bfloat16, device="cuda", generator=gen)
            fn = make(x)
            row = {"impl": name, "label": label, "T": T}
            try:
                with torch.inference_mode():
                    row["ms"], row["ms_p10"], row["ms_p90"] = time_fn(fn, args.reps)
                    if nvml.ok and not args.no_energy:
                        watts, per = energy_fn(fn, nvml, args.window)
                        row["watts"] = watts
                        row["j_per_token"] = watts * per / T if watts else None
            except Exception as e:  # report, never invent
                row["error"] = f"{type(e).__name__}: {e}"[:200]
            print(json.dumps(row), flush=True)
            rows.append(row)
        set_impl(block, cfg, "eager")
    del block
    torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------- driver
def run_ours(args, tokens):
    cmd = [args.ours, "--tokens", ",".join(map(str, tokens)), "--H", str(args.H), "--I", str(args.I), "--E",
           str(args.E), "--k", str(args.k), "--reps", str(args.reps), "--window", str(args.window)]
    if args.no_energy:
        cmd.append("--no-energy")
    cmd += args.ours_args.split()
    print("# " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(p.stderr)
    meta, rows = {}, []
    for line in p.stdout.splitlines():
        print(line, flush=True)
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if d.get("impl") == "wattmoe":
            rows.append(d)
        else:
            meta.update(d)
    if p.returncode != 0:
        print(f"# moe_layer_bench exited {p.returncode}", flush=True)
    return meta, rows


def fmt(v, spec=".3f"):
    return "–" if v is None else format(v, spec)


def main():
    args = parse_args()
    tokens = [int(t) for t in args.tokens.split(",")]
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_properties(0)
    nvml = Nvml() if not args.no_energy else type("N", (), {"ok": False})()
    try:
        import transformers

        tv = transformers.__version__
    except Exception:
        tv = "missing"
    print(f"# device {dev.name}, {dev.multi_processor_count} SMs; torch {torch.__version__}; transformers {tv}",
          flush=True)
    idle = idle_power(nvml) if nvml.ok else None
    print(f"# idle {fmt(idle, '.1f')} W", flush=True)

    meta, ours = run_ours(args, tokens) if args.ours else ({}, [])
    bw, peak = ceilings()
    print(f"# ceilings: copy {bw / 1e12:.2f} TB/s, bf16 matmul {peak / 1e12:.0f} TFLOP/s", flush=True)
    trows = torch_rows(args, tokens, nvml)
    dense = {T: dense_equal_ms(args, T) for T in tokens if T >= 512}
    for T, v in dense.items():
        print(json.dumps({"impl": "dense_equal", "T": T, "ms": v}), flush=True)

    H, I, E, k = args.H, args.I, args.E, args.k
    expert_bytes = 3 * H * I * 2
    by = {(r["impl"], r["T"]): r for r in trows}
    ours_by = {r["T"]: r for r in ours}
    tnames = [p for p in args.paths.split(",") if any(r["impl"] == p for r in trows)]
    lines = []
    lines.append("| T | ours path | ours ms | ours graph ms | " + " | ".join(f"{n} ms" for n in tnames) +
                 " | best torch / ours | roofline ms (mem; flop) | HBM % of copy BW: " + " / ".join(["ours"] + tnames) +
                 " | J/token: " + " / ".join(["ours"] + tnames) +
                 " | dense GEMMs ms (same FLOPs) | % of dense rate: same shapes / 8192³ |")
    lines.append("|" + "---|" * (10 + len(tnames)))
    for T in tokens:
        o = ours_by.get(T, {})
        rs = [by.get((n, T), {}) for n in tnames]
        active = o.get("active_experts")
        if active is None:  # expected distinct experts for uniform random routing
            active = E * (1 - (1 - k / E) ** T)
        t_mem = (active * expert_bytes + E * H * 2 + 2 * T * H * 2) / bw * 1e3
        t_flop = 2 * T * k * 3 * H * I / peak * 1e3
        best = min([r["ms"] for r in rs if r.get("ms") is not None], default=None)
        ratio = best / o["ms"] if best and o.get("ms") else None

        def pct(r):
            if T > 64 or not r.get("ms"):
                return "–"
            return f"{100 * active * expert_bytes / (r['ms'] * 1e-3) / bw:.0f}%"

        def j(r):
            v = r.get("j_per_token")
            return "–" if v is None or v < 0 else f"{v:.3g}"

        def ms(r):
            return "error" if "error" in r else fmt(r.get("ms"))

        def dense_cells(T, ours_ms, t_flop):
            d = dense.get(T)
            if d is None or not ours_ms:
                return "– | –"
            return f"{d:.3f} | {100 * d / ours_ms:.0f}% / {100 * t_flop / ours_ms:.0f}%"

        lines.append(f"| {T} | {o.get('path', '–')} | {fmt(o.get('ms'))} | {fmt(o.get('graph_ms'))} | " +
                     " | ".join(ms(r) for r in rs) + f" | {fmt(ratio, '.2f')}× | "
                     f"{max(t_mem, t_flop):.3f} ({t_mem:.3f}; {t_flop:.3f}) | " +
                     " / ".join(pct(r) for r in [o] + rs) + " | " + " / ".join(j(r) for r in [o] + rs) + " | " +
                     dense_cells(T, o.get("ms"), t_flop) + " |")
    head = (f"device: {dev.name} ({dev.multi_processor_count} SMs), torch {torch.__version__}, transformers {tv}; "
            f"H={H} I={I} E={E} k={k} bf16; copy BW {bw / 1e12:.2f} TB/s, bf16 matmul {peak / 1e12:.0f} TFLOP/s; "
            f"idle {fmt(idle, '.1f')} W (python) / {fmt(meta.get('idle_w'), '.1f')} W (bench)")
    print("\n" + head)
    print("\n".join(lines))
    for r in trows:
        if "error" in r:
            print(f"# {r['impl']} T={r['T']}: {r['error']}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "head": head, "copy_bw": bw, "matmul_flops": peak, "idle_w_python": idle,
                       "ours": ours, "torch": trows, "dense_equal_ms": dense}, f, indent=1)
        with open(os.path.join(args.out, "table.md"), "w") as f:
            f.write(head + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
