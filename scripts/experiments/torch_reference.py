#!/usr/bin/env python3
"""A `wattmoe train --preset` run done by PyTorch + transformers: the independent reference beside our trainer.

To tell apart "our engine trains worse" from "the reference numbers come from another split or schedule", the same
model and schedule in an independent implementation. Model: transformers' MixtralForCausalLM with the preset's shape
(src/train/presets.cpp: small = hidden 128, 4 layers, 4/2 heads of 32, expert FFN 256; medium = hidden 512, 8 layers,
8/4 heads of 64, expert FFN 1024; both 8 experts top-2, RoPE theta 1e4, RMSNorm eps 1e-5, untied embeddings), the
vocabulary of the tokenizer (bytes: 256; or a tokenizer.json, encoded by the `tokenizers` library as our BPE encodes:
tests/text check the parity), fp32 with TF32 off. Schedule as `wattmoe train --preset P`: batch B random windows of
S+1 tokens of the training text per step (uniform starts), AdamW betas 0.9/0.95 weight decay 0.1 on matrices only,
linear warmup then cosine to 10% of the peak at the last step, clip 1.0, load-balancing coefficient 0.01, init
normal(0, 0.02) and norm gains 1. Evaluation as `wattmoe eval` (seq 128): disjoint windows of 129 tokens with stride
128 over each whole file, every token after the first scored once, bits per byte = total nats / (ln 2 × the UTF-8
bytes those tokens cover), top-2 routing as trained.

    python3 scripts/experiments/torch_reference.py --data-dir data --out OUT.json                  # small on kjv
    python3 scripts/experiments/torch_reference.py --preset medium --tokenizer tokenizer.json \\
        --train prose.train.txt --val prose.val.txt --eval kjv/test.txt --eval man/test.txt ... --out OUT.json
"""
import argparse, json, math, os, time

import torch
from transformers import MixtralConfig, MixtralForCausalLM

PRESETS = {  # name: (hidden, layers, heads, kv heads, head_dim, expert FFN, batch, seq, steps, peak lr, warmup)
    "small": (128, 4, 4, 2, 32, 256, 16, 128, 3000, 3e-3, 100),
    "medium": (512, 8, 8, 4, 64, 1024, 32, 256, 3000, 1e-3, 200),
}

ap = argparse.ArgumentParser()
ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
ap.add_argument("--data-dir", default="data",
                help="holds kjv.train.txt and kjv.val.txt (the defaults of --train/--val)")
ap.add_argument("--train")
ap.add_argument("--val")
ap.add_argument("--eval", action="append", default=[], help="another file scored at the end (repeatable)")
ap.add_argument("--tokenizer", help="a Hugging Face tokenizer.json (default: bytes)")
ap.add_argument("--steps", type=int, help="default: the preset's")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--attn", default="eager", help="transformers attn_implementation (eager, sdpa)")
ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
ap.add_argument("--out", required=True)
a = ap.parse_args()

H, L, NH, KV, HD, I, B, S, STEPS, PEAK, WARM = PRESETS[a.preset]
STEPS = a.steps or STEPS
EVAL_SEQ = 128
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(a.seed)
dev = torch.device(a.device)

if a.tokenizer:
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(a.tokenizer)
    V = tok.get_vocab_size()
    encode = lambda text: tok.encode(text, add_special_tokens=False).ids
else:
    tok, V = None, 256
    encode = lambda text: list(text.encode("utf-8"))


def load(path):
    raw = open(path, "rb").read()
    return torch.tensor(encode(raw.decode("utf-8")), dtype=torch.long), len(raw)


t_load = time.time()
train, _ = load(a.train or os.path.join(a.data_dir, "kjv.train.txt"))
val_path = a.val or os.path.join(a.data_dir, "kjv.val.txt")
print(json.dumps({"train_tokens": len(train), "vocab": V, "tokenize_s": time.time() - t_load}), flush=True)
cfg = MixtralConfig(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
                    num_key_value_heads=KV, head_dim=HD, num_local_experts=8, num_experts_per_tok=2, rope_theta=1e4,
                    rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=max(S, 4096),
                    router_aux_loss_coef=0.01, output_router_logits=True, initializer_range=0.02,
                    sliding_window=None, attn_implementation=a.attn)
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
    prog = min(max((step - WARM) / max(1, STEPS - WARM), 0.0), 1.0)
    return PEAK * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


gen = torch.Generator().manual_seed(a.seed)
t0, log = time.time(), []
model.train()
for step in range(STEPS):
    for g in opt.param_groups: g["lr"] = lr_at(step)
    off = torch.randint(0, len(train) - S - 1, (B,), generator=gen)
    win = torch.stack([train[o:o + S + 1] for o in off.tolist()]).to(dev)
    out = model(input_ids=win[:, :-1], output_router_logits=True)  # aux_loss: transformers' load-balancing loss
    logits = out.logits.float()
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), win[:, 1:].reshape(-1))
    loss = nll + cfg.router_aux_loss_coef * out.aux_loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if (step + 1) % 250 == 0:
        log.append({"step": step + 1, "train_nats_per_token": nll.item(), "s": time.time() - t0})
        print(json.dumps(log[-1]), flush=True)
train_s = time.time() - t0


def bits_per_byte(path):
    """wattmoe eval's protocol on one file: (bits/byte, tokens scored)."""
    ids, nbytes = load(path)
    total, count = 0.0, 0
    starts = list(range(0, len(ids) - 1, EVAL_SEQ))
    full = [st for st in starts if st + EVAL_SEQ + 1 <= len(ids)]
    with torch.no_grad():
        for i in range(0, len(full), 64):
            w = torch.stack([ids[st:st + EVAL_SEQ + 1] for st in full[i:i + 64]]).to(dev)
            lg = model(input_ids=w[:, :-1]).logits.float()
            total += torch.nn.functional.cross_entropy(lg.reshape(-1, V), w[:, 1:].reshape(-1), reduction="sum").item()
            count += w.shape[0] * EVAL_SEQ
        for st in starts[len(full):]:  # the ragged last window
            w = ids[st:].to(dev)
            lg = model(input_ids=w[:-1].unsqueeze(0)).logits.float()[0]
            total += torch.nn.functional.cross_entropy(lg, w[1:], reduction="sum").item()
            count += len(w) - 1
    # The bytes the scored tokens cover, as wattmoe eval counts them (one byte a token for bytes; else a share).
    covered = count if len(ids) == nbytes else nbytes * count / (len(ids) - 1)
    return total / (math.log(2) * covered), count


model.eval()
val_bpb, val_tokens = bits_per_byte(val_path)
res = {"preset": a.preset, "val": val_path, "val_bits_per_byte": val_bpb, "tokens_scored": val_tokens,
       "eval": {p: dict(zip(("bits_per_byte", "tokens_scored"), bits_per_byte(p))) for p in a.eval},
       "steps": STEPS, "batch": B, "seq": S, "vocab": V, "tokenizer": a.tokenizer, "seed": a.seed, "attn": a.attn,
       "train_seconds": train_s, "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
       "torch": torch.__version__, "log": log}
print(json.dumps({k: v for k, v in res.items() if k != "log"}))
json.dump(res, open(a.out, "w"), indent=1)
