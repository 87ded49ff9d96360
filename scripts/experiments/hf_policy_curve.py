#!/usr/bin/env python3
"""The static routing curve computed a second, independent way: transformers' MixtralForCausalLM on the same
checkpoint, with the routing policies written here in PyTorch from the issue's definitions (not from our C++), and the
evaluation protocol of `wattmoe eval` (windows of seq+1 tokens every --stride tokens, each scoring only the targets no
earlier window scored). With --bin, `wattmoe eval` runs the same policy and the table shows both and their relative
difference; they should agree to fp32 rounding.

Policies (router softmax p over E experts, the model's top-k K; the kept weights renormalised to sum 1, Mixtral's rule):
  topk_kN   the N largest p;
  skip_B    top-K, then drop every later expert whose p is below B × the first's;
  top_p_P   the smallest prefix of the experts by descending p whose cumulative p reaches P, 1 ≤ size ≤ K.

    python3 scripts/experiments/hf_policy_curve.py --model models/kjv-small --data data/kjv.val.txt \
        [--stride 128] [--max-tokens N] [--bin build/wattmoe] [--out OUT.json]
CPU is fine (the shipped model scores kjv val in about a minute per policy on two cores). Needs torch + transformers.
"""
import argparse, json, math, subprocess

import torch
import transformers.models.mixtral.modeling_mixtral as mixtral
from transformers import MixtralForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/kjv-small")
ap.add_argument("--data", default="data/kjv.val.txt")
ap.add_argument("--seq", type=int, default=128)
ap.add_argument("--stride", type=int, default=0, help="0: seq")
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--max-tokens", type=int, default=0)
ap.add_argument("--policies", default="topk_k2,topk_k1,skip_0.3,skip_0.5,skip_0.7,top_p_0.7,top_p_0.8")
ap.add_argument("--bin", default="", help="a wattmoe binary: run `wattmoe eval` with the same policy beside")
ap.add_argument("--out", default="")
a = ap.parse_args()
stride = a.stride or a.seq
torch.set_num_threads(max(1, torch.get_num_threads()))

tokens = list(open(a.data, "rb").read())
n = min(len(tokens), a.max_tokens + 1) if a.max_tokens > 0 else len(tokens)
ids = torch.tensor(tokens[:n], dtype=torch.long)
model = MixtralForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
K = model.config.num_experts_per_tok
policy = {}
use = [0, 0]  # (token, expert) pairs, tokens routed (all positions run, as `wattmoe eval` counts them)


def select(p):
    """Kept-expert mask [N, E] for router probabilities p [N, E] under the current policy."""
    name = policy["name"]
    order = torch.argsort(p, dim=-1, descending=True, stable=True)
    sp = torch.gather(p, -1, order)
    rank = torch.arange(p.shape[-1]).expand_as(p)
    if name.startswith("topk_k"):
        keep_sorted = rank < int(name[6:])
    elif name.startswith("skip_"):
        keep_sorted = (rank < K) & (sp >= float(name[5:]) * sp[:, :1])
    elif name.startswith("top_p_"):
        before = torch.cumsum(sp, -1) - sp  # cumulative p of the experts ranked above
        keep_sorted = ((before < float(name[6:])) | (rank == 0)) & (rank < K)
    else:
        raise SystemExit(f"unknown policy {name}")
    return torch.zeros_like(p, dtype=torch.bool).scatter(-1, order, keep_sorted)


def router_forward(self, hidden):
    hidden = hidden.reshape(-1, self.hidden_dim)
    logits = torch.nn.functional.linear(hidden, self.weight)
    p = torch.softmax(logits.float(), dim=-1)
    keep = select(p)
    use[0] += int(keep.sum())
    use[1] += keep.shape[0]
    w = torch.where(keep, p, torch.zeros_like(p))
    w = w / w.sum(-1, keepdim=True)
    kmax = int(keep.sum(-1).max())
    weights, index = torch.topk(w, kmax, dim=-1)  # dropped experts carry weight 0: no contribution
    return logits, weights.to(hidden.dtype), index


mixtral.MixtralTopKRouter.forward = router_forward


def windows():
    """(start, length, first scored target) as in eval/evaluate.cpp."""
    out, st, scored = [], 0, 0
    while st + 1 < n:
        ln = min(a.seq, n - 1 - st)
        out.append((st, ln, scored))
        scored = st + ln
        if st + ln >= n - 1:
            break
        st += stride
    return out


def bits_per_byte():
    nats, count = 0.0, 0
    ws = windows()
    with torch.no_grad():
        i = 0
        while i < len(ws):
            ln = ws[i][1]
            j = i
            while j < len(ws) and j - i < a.batch and ws[j][1] == ln:
                j += 1
            x = torch.stack([ids[st:st + ln + 1] for st, _, _ in ws[i:j]])
            lp = torch.log_softmax(model(x[:, :-1]).logits.float(), -1)
            nll = -lp.gather(-1, x[:, 1:, None])[..., 0].double()
            for b, (st, _, scored) in enumerate(ws[i:j]):
                first = max(scored - st, 0)  # targets st+1+t with st+1+t > scored
                nats += nll[b, first:].sum().item()
                count += ln - first
            i = j
    return nats / count / math.log(2), count


def engine(name):
    if not a.bin:
        return None
    if name.startswith("topk_k"):
        flags = ["--k-max", name[6:]]
    elif name.startswith("skip_"):
        flags = ["--policy", "skip", "--beta", name[5:]]
    else:
        flags = ["--policy", "top_p", "--route-top-p", name[6:]]
    cmd = [a.bin, "eval", "--model", a.model, "--data", a.data, "--seq", str(a.seq), "--stride", str(stride),
           "--batch", str(a.batch), "--json"] + (["--max-tokens", str(a.max_tokens)] if a.max_tokens else []) + flags
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


rows = []
print(f"| policy | transformers + policy here: bits/byte | experts/token | wattmoe eval: bits/byte | experts/token "
      f"| relative difference |\n|---|---|---|---|---|---|", flush=True)
for name in a.policies.split(","):
    policy["name"], use[:] = name, [0, 0]
    bpb, count = bits_per_byte()
    row = {"policy": name, "stride": stride, "tokens": count, "hf_bits_per_byte": bpb,
           "hf_experts_per_token": use[0] / use[1]}
    e = engine(name)
    if e:
        row.update(ours_bits_per_byte=e["bits_per_byte"], ours_experts_per_token=e["experts_per_token"],
                   ours_tokens=e["tokens"])
    rows.append(row)
    ours = (f"{e['bits_per_byte']:.6f} | {e['experts_per_token']:.4f} | {e['bits_per_byte'] / bpb - 1:+.1e}" if e
            else "– | – | –")
    print(f"| {name} | {bpb:.6f} | {row['hf_experts_per_token']:.4f} | {ours} |", flush=True)
if a.out:
    json.dump(rows, open(a.out, "w"), indent=1)
