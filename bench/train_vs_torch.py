#!/usr/bin/env python3
"""GPU training throughput of wattmoe beside PyTorch eager + transformers on the same model, batch and card.

Ours: `wattmoe train --device cuda` (fp32 weights, gradients and AdamW state on the GPU) on a model shape given as an
HF config.json (`--model-config`), the `small` preset's schedule, kjv text. Its steady-state tokens/s is taken from
metrics.jsonl between the first logged step (10, after warm-up) and the last, so start-up, the final validation and
checkpoints are not counted (--ckpt-every/--eval-every are set past the run).
PyTorch: transformers' MixtralForCausalLM built from the same config.json (as bench/cpu_vs_torch.py does on the CPU),
fp32 with TF32 off (as ours: true fp32 GEMMs), eager mode (no torch.compile), the default attention implementation
unless --attn says otherwise; one training step = forward with labels and router logits (NLL + load-balancing loss,
coefficient 0.01 as ours), backward, clip_grad_norm_(1.0), AdamW(betas 0.9/0.95, wd 0.1), torch.cuda.synchronize();
median of --reps steps after --warmup. Its batches are random token ids already on the GPU (ours samples kjv windows
on the host each step, so any input cost is on our side).
Both run in this one process's run, one after the other, on the same card; the ratio is ours / PyTorch.

    python bench/train_vs_torch.py --bin build/wattmoe --shape medium [--shape small] [--json OUT]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

SHAPES = {  # name: (hidden, layers, heads, kv heads, head_dim, experts, top_k, expert FFN, batch, seq)
    "small": (128, 4, 4, 2, 32, 8, 2, 256, 16, 128),     # the `small` preset (models/kjv-small)
    "medium": (512, 8, 8, 4, 64, 8, 2, 1024, 32, 256),   # ~110M parameters, ~30M active per token
    "large": (1024, 8, 16, 8, 64, 8, 2, 2048, 16, 512),
}

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "wattmoe"))
ap.add_argument("--shape", action="append", help="one of %s (repeatable; default medium)" % ", ".join(SHAPES))
ap.add_argument("--train", default="data/kjv.train.txt")
ap.add_argument("--val", default="data/kjv.val.txt")
ap.add_argument("--steps", type=int, default=60, help="our training steps (throughput from step 10 to the last)")
ap.add_argument("--reps", type=int, default=20, help="PyTorch steps timed")
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--batch", type=int, help="override the shape's batch")
ap.add_argument("--seq", type=int, help="override the shape's sequence length")
ap.add_argument("--attn", default=None, help="transformers attn_implementation (default: the library's)")
ap.add_argument("--timeout", type=float, default=600)
ap.add_argument("--json")
ap.add_argument("--ours-only", action="store_true", help="skip PyTorch (a dry run of our side)")
ap.add_argument("--ours-device", default="cuda", help="our --device (cpu: a dry run of this script without a GPU)")
a = ap.parse_args()
shapes = a.shape or ["medium"]
for s in shapes:
    if s not in SHAPES:
        sys.exit(f"--shape {s}: expected one of {', '.join(SHAPES)}")


def hf_config(name):
    H, L, nh, nkv, hd, E, k, I, B, S = SHAPES[name]
    return {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "vocab_size": 256, "hidden_size": H,
            "intermediate_size": I, "num_hidden_layers": L, "num_attention_heads": nh, "num_key_value_heads": nkv,
            "head_dim": hd, "num_local_experts": E, "num_experts_per_tok": k, "rope_theta": 1e4, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": False, "router_aux_loss_coef": 0.01, "max_position_embeddings": S,
            "hidden_act": "silu", "torch_dtype": "float32"}


def run_ours(name, cfg_path, B, S, work):
    out = os.path.join(work, "ours_" + name)
    cmd = [a.bin, "train", "--device", a.ours_device, "--preset", "small", "--model-config", cfg_path, "--batch", str(B),
           "--seq", str(S), "--steps", str(a.steps), "--eval-every", str(10 * a.steps), "--ckpt-every",
           str(10 * a.steps), "--train", a.train, "--val", a.val, "--out", out, "--no-resume", "--json"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    if p.returncode != 0:
        sys.exit(f"wattmoe train failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-4000:]}")
    summary = json.loads(p.stdout)
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"loss"' in l]
    first, last = rows[0], rows[-1]
    if last["step"] <= first["step"]:
        sys.exit("too few logged steps: raise --steps")
    tps = (last["step"] - first["step"]) * B * S / (last["elapsed_s"] - first["elapsed_s"])
    return {"tokens_per_s": tps, "steps_measured": [first["step"], last["step"]], "wall_s": time.time() - t0,
            "summary_tokens_per_s": summary["tokens_per_s"], "final_loss": last["loss"], "first_loss": first["loss"]}


if not a.ours_only:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM
    import transformers

    assert torch.cuda.is_available(), "PyTorch sees no GPU"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")


def run_torch(name, B, S):
    c = hf_config(name)
    kw = {k: v for k, v in c.items() if k not in ("architectures", "model_type", "torch_dtype")}
    kw["max_position_embeddings"] = S
    if a.attn:
        kw["attn_implementation"] = a.attn
    torch.manual_seed(0)
    model = MixtralForCausalLM(MixtralConfig(**kw, output_router_logits=True)).float().to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator(device=dev).manual_seed(0)
    batches = [torch.randint(0, 256, (B, S + 1), device=dev, generator=g) for _ in range(4)]

    def step(i):
        x = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        out = model(x[:, :-1], labels=x[:, :-1], output_router_logits=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return out.loss

    for i in range(a.warmup):
        step(i)
    torch.cuda.synchronize()
    ts = []
    for i in range(a.reps):
        t = time.perf_counter()
        step(i)
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    med = statistics.median(ts)
    impl = getattr(model.config, "_attn_implementation", None)
    n_params = sum(p.numel() for p in model.parameters())
    del model, opt, batches
    torch.cuda.empty_cache()
    return {"tokens_per_s": B * S / med, "median_step_s": med, "attn_implementation": impl, "parameters": n_params}


if a.ours_only:
    def run_torch(name, B, S):
        return {"tokens_per_s": float("nan"), "median_step_s": float("nan"), "attn_implementation": None,
                "parameters": 0}
card = "(not asked)" if a.ours_only else torch.cuda.get_device_name(0)
versions = {} if a.ours_only else {"torch": torch.__version__, "transformers": transformers.__version__}
rows = []
with tempfile.TemporaryDirectory() as work:
    for name in shapes:
        H, L, nh, nkv, hd, E, k, I, B, S = SHAPES[name]
        B, S = a.batch or B, a.seq or S
        cfg_path = os.path.join(work, f"{name}.json")
        json.dump(hf_config(name), open(cfg_path, "w"), indent=2)
        ours = run_ours(name, cfg_path, B, S, work)
        theirs = run_torch(name, B, S)
        rows.append({"shape": name, "config": hf_config(name), "batch": B, "seq": S, "wattmoe": ours,
                     "torch": theirs, "ratio": ours["tokens_per_s"] / theirs["tokens_per_s"]})

print(f"GPU: {card}; {versions}; ours on {a.ours_device}; fp32 (TF32 off), "
      f"training step = fwd + NLL/LB loss + bwd + clip + AdamW")
print(f"{'shape':<8}{'params':>12}{'batch x seq':>13}{'wattmoe tok/s':>15}{'PyTorch tok/s':>15}{'ratio':>8}")
for r in rows:
    print(f"{r['shape']:<8}{r['torch']['parameters']:>12,}{r['batch']:>7} x {r['seq']:<4}"
          f"{r['wattmoe']['tokens_per_s']:>15.0f}{r['torch']['tokens_per_s']:>15.0f}{r['ratio']:>7.2f}x")
if a.json:
    with open(a.json, "w") as f:
        json.dump({"card": card, **versions, "ours_device": a.ours_device, "rows": rows}, f, indent=2)
