#!/usr/bin/env python3
"""Causal GQA attention forward in PyTorch on the same shapes as bench/attention_bench (the anchor beside ours).

torch.nn.functional.scaled_dot_product_attention(is_causal=True), bf16, inputs [batch, heads, T, hd] with
batch = max(1, batch_tokens / T) (the same rule as attention_bench), for each SDPA backend that accepts the shape:
flash (FlashAttention-2 in PyTorch), efficient (memory-efficient) and math (materialised). GQA: K and V carry
kv_heads heads and SDPA's enable_gqa expands them. Time: CUDA events around each call, median of --reps after 3
warm-up calls; TFLOP/s counts the causal half as attention_bench does (2·2·batch·heads·hd·T(T+1)/2). One JSON line
per (T, backend); a backend that refuses the shape prints {"skipped": ...} instead.

  python3 bench/attention_torch.py --tokens 128,512,1024,2048,4096 --heads 8 --kv-heads 8 --hd 64
"""
import argparse
import json
import statistics

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="128,512,1024,2048,4096")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--hd", type=int, default=64)
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    if a.heads % a.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "heads": a.heads,
                      "kv_heads": a.kv_heads, "hd": a.hd}))
    backends = {"torch_flash": SDPBackend.FLASH_ATTENTION, "torch_efficient": SDPBackend.EFFICIENT_ATTENTION,
                "torch_math": SDPBackend.MATH}
    for T in (int(t) for t in a.tokens.split(",")):
        B = max(1, a.batch_tokens // T)
        g = torch.Generator(device="cuda").manual_seed(T)
        q = torch.randn(B, a.heads, T, a.hd, device="cuda", dtype=torch.bfloat16, generator=g)
        k = torch.randn(B, a.kv_heads, T, a.hd, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(B, a.kv_heads, T, a.hd, device="cuda", dtype=torch.bfloat16, generator=g)
        flops = 2 * 2 * B * a.heads * a.hd * T * (T + 1) / 2
        for name, be in backends.items():
            try:
                with sdpa_kernel(be):
                    call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                  enable_gqa=a.heads != a.kv_heads)
                    for _ in range(3):
                        call()
                    ms = []
                    for _ in range(a.reps):
                        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s.record()
                        call()
                        e.record()
                        e.synchronize()
                        ms.append(s.elapsed_time(e))
            except RuntimeError as err:
                print(json.dumps({"skipped": name, "T": T, "why": str(err).splitlines()[0][:200]}))
                continue
            m = statistics.median(ms)
            print(json.dumps({"impl": name, "T": T, "batch": B, "ms": round(m, 4),
                              "tflops": round(flops / (m * 1e-3) / 1e12, 1)}))


if __name__ == "__main__":
    main()
