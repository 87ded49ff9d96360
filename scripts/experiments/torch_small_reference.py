#!/usr/bin/env python3
"""The `small` preset trained by PyTorch + transformers on our kjv split: the reference beside models/kjv-small.

An independent implementation of the same model and schedule, to tell apart "our engine trains worse" from "the
issue's reference numbers come from another split or schedule". Model: transformers' MixtralForCausalLM with the
preset's shape (vocab 256 bytes, hidden 128, 4 layers, 4 heads / 2 KV heads, head 32, 8 experts top-2, expert FFN
256, RoPE theta 1e4, RMSNorm eps 1e-5, untied embeddings), fp32 with TF32 off. Schedule as `wattmoe train --preset
small`: batch 16 random windows of 129 bytes of kjv train per step, AdamW lr 3e-3 betas 0.9/0.95 weight decay 0.1 on
matrices only, 100 warmup steps then cosine to 10% at 3000 steps, clip 1.0, load-balancing coefficient 0.01, init
normal(0, 0.02). Evaluation as `wattmoe eval`: windows of 129 bytes with stride 128 over the whole file, every
position scored once, bits per byte = mean NLL / ln 2, top-2 routing as trained.

    python3 scripts/experiments/torch_small_reference.py --data-dir data --out OUT.json [--steps 3000] [--seed 1]
"""
import argparse, json, math, os, time

import torch
from transformers import MixtralConfig, MixtralForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--data-dir", default="data")
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
ap.add_argument("--out", required=True)
a = ap.parse_args()

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(a.seed)
dev = torch.device(a.device)
B, S, PEAK, WARM = 16, 128, 3e-3, 100


def load(name):
    with open(os.path.join(a.data_dir, name), "rb") as f:
        return torch.tensor(list(f.read()), dtype=torch.long)


train, val = load("kjv.train.txt"), load("kjv.val.txt")
cfg = MixtralConfig(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_local_experts=8,
                    num_experts_per_tok=2, rope_theta=1e4, rms_norm_eps=1e-5, tie_word_embeddings=False,
                    max_position_embeddings=S, router_aux_loss_coef=0.01, output_router_logits=True,
                    initializer_range=0.02, sliding_window=None, attn_implementation="eager")
model = MixtralForCausalLM(cfg).to(dev)
with torch.no_grad():  # our init: every matrix normal(0, 0.02), norm gains 1
    for n, p in model.named_parameters():
        if p.dim() >= 2: p.normal_(0.0, 0.02)
        else: p.fill_(1.0)
decay = [p for p in model.parameters() if p.dim() >= 2]
rest = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                        lr=PEAK, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step):
    if step < WARM: return PEAK * (step + 1) / WARM
    prog = min(max((step - WARM) / max(1, a.steps - WARM), 0.0), 1.0)
    return PEAK * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


gen = torch.Generator().manual_seed(a.seed)
t0, log = time.time(), []
model.train()
for step in range(a.steps):
    for g in opt.param_groups: g["lr"] = lr_at(step)
    off = torch.randint(0, len(train) - S - 1, (B,), generator=gen)
    win = torch.stack([train[o:o + S + 1] for o in off.tolist()]).to(dev)
    out = model(input_ids=win[:, :-1], output_router_logits=True)  # aux_loss: transformers' load-balancing loss
    logits = out.logits.float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), win[:, 1:].reshape(-1))
    loss = nll + cfg.router_aux_loss_coef * out.aux_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if (step + 1) % 250 == 0:
        log.append({"step": step + 1, "train_bpb": nll.item() / math.log(2), "s": time.time() - t0})
        print(json.dumps(log[-1]), flush=True)
train_s = time.time() - t0

model.eval()
total, count = 0.0, 0
with torch.no_grad():
    starts = list(range(0, len(val) - 1, S))
    full = [st for st in starts if st + S + 1 <= len(val)]
    for i in range(0, len(full), 64):
        w = torch.stack([val[st:st + S + 1] for st in full[i:i + 64]]).to(dev)
        lg = model(input_ids=w[:, :-1]).logits.float()
        total += torch.nn.functional.cross_entropy(lg.reshape(-1, 256), w[:, 1:].reshape(-1), reduction="sum").item()
        count += w.shape[0] * S
    for st in starts[len(full):]:  # the ragged last window
        w = val[st:].to(dev)
        lg = model(input_ids=w[:-1].unsqueeze(0)).logits.float()[0]
        total += torch.nn.functional.cross_entropy(lg, w[1:], reduction="sum").item()
        count += len(w) - 1
res = {"val_bits_per_byte": total / count / math.log(2), "tokens_scored": count, "steps": a.steps,
       "seed": a.seed, "train_seconds": train_s, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
       "torch": torch.__version__, "log": log}
print(json.dumps({k: v for k, v in res.items() if k != "log"}))
json.dump(res, open(a.out, "w"), indent=1)
