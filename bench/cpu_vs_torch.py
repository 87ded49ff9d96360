#!/usr/bin/env python3
"""CPU throughput of wattmoe beside PyTorch eager + transformers on the same model shape, same machine, same run.

Runs build/bench/model_bench (ours) and transformers' MixtralForCausalLM with the `small` preset's shape (vocab 256,
hidden 128, 4 layers, 4/2 heads, 8 experts top-2, expert FFN 256), batch 16 x 128 tokens, fp32, the same number of
threads for both, and prints tokens/s for forward, forward+backward (NLL + load-balancing loss) and a training step (+ clipping,
AdamW) with the ratio
ours / PyTorch. Needs torch + transformers (not CI):
    python bench/cpu_vs_torch.py [--threads N] [--reps 5] [--rounds 1] [--json OUT]
On a shared machine the load drifts between the two measurements: --rounds R alternates ours and PyTorch R times and
reports, per mode, the median over rounds of each side's median and of the per-round ratio.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--rounds", type=int, default=1)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build", "bench", "model_bench"))
ap.add_argument("--json")
a = ap.parse_args()

env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads), WATTMOE_THREADS=str(a.threads))


def run_ours():
    out = subprocess.run([a.bench, "small", str(a.batch), str(a.seq), str(a.reps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return {r["mode"]: r for r in map(json.loads, out.strip().splitlines())}


import torch
from transformers import MixtralConfig, MixtralForCausalLM

torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = MixtralConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, rope_theta=1e4,
                    rms_norm_eps=1e-5, tie_word_embeddings=False, router_aux_loss_coef=0.01,
                    max_position_embeddings=4096, output_router_logits=True)
model = MixtralForCausalLM(cfg).float()
ids = torch.randint(0, 256, (a.batch, a.seq))


def timed(fn):
    fn()  # warm-up
    ts = []
    for _ in range(a.reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def fwd():
    with torch.no_grad():
        model(ids, output_router_logits=False)


def fwd_bwd():
    model.zero_grad(set_to_none=True)
    model(ids, labels=ids, output_router_logits=True).loss.backward()


opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)


def train_step():
    fwd_bwd()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


modes = ("forward", "forward_backward", "train_step")
tokens = a.batch * a.seq
per_round = {m: [] for m in modes}  # (ours tok/s, torch tok/s) per round
for _ in range(a.rounds):
    ours = run_ours()
    torch_s = {"forward": timed(fwd), "forward_backward": timed(fwd_bwd), "train_step": timed(train_step)}
    for m in modes:
        per_round[m].append((tokens / ours[m]["median_s"], tokens / torch_s[m]))
rows = []
print(f"CPU: {platform.processor() or platform.machine()}, {a.threads} threads; torch {torch.__version__}, "
      f"batch {a.batch} x {a.seq} tokens, fp32, median of {a.reps}" + (f", {a.rounds} rounds" if a.rounds > 1 else ""))
print(f"{'mode':<18}{'wattmoe tok/s':>15}{'PyTorch tok/s':>15}{'ratio':>8}")
for mode in modes:
    o = statistics.median(r[0] for r in per_round[mode])
    t = statistics.median(r[1] for r in per_round[mode])
    ratio = statistics.median(r[0] / r[1] for r in per_round[mode])
    rows.append({"mode": mode, "wattmoe_tokens_per_s": o, "torch_tokens_per_s": t, "ratio": ratio,
                 "rounds": [{"wattmoe": r[0], "torch": r[1]} for r in per_round[mode]]})
    print(f"{mode:<18}{o:>15.0f}{t:>15.0f}{ratio:>7.2f}x")
if a.json:
    with open(a.json, "w") as f:
        json.dump({"threads": a.threads, "torch": torch.__version__, "rows": rows}, f, indent=2)
