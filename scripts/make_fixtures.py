#!/usr/bin/env python3
"""Generate the golden MoE fixtures under tests/fixtures/ from Hugging Face transformers.

CI never runs this (it has no PyTorch); it only reads the committed output. Regenerate with

    /work/venv-ref/bin/python scripts/make_fixtures.py --out tests/fixtures

(any Python with torch, transformers, safetensors and numpy works; see tests/fixtures/README.md).

Per fixture <out>/<name>/:
  config.json                    the HF config exactly as save_pretrained writes it (dtype float32)
  model.safetensors              all weights, F32, hub checkpoint layout (one tensor per expert)
  input.safetensors              input_ids I64 [B,S]
  expected_entropy.safetensors   logits, router_logits.{layer}, loss = mean token entropy, grad.{name}
  expected_nll.safetensors       logits, router_logits.{layer}, loss = mean shifted causal-LM NLL, grad.{name}
  expected_aux.safetensors       loss = load_balancing_loss_func value, grad.{name}
plus <out>/manifest.json.

Weights are generated in float32 (fixed seed per fixture, in hub-name order, so they do not depend on how the
installed transformers lays out its modules). The references come from the HF model cast to float64 with eager
attention and eager experts. Every fixture is checked against an independent float64 re-implementation written
here from the hub-named tensors (logits, router logits and all gradients), and is reloaded with
AutoModelForCausalLM.from_pretrained to check that the stored directory reproduces the stored logits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    OlmoeConfig,
    OlmoeForCausalLM,
    Qwen2MoeConfig,
    Qwen2MoeForCausalLM,
)

MIN_TOPK_GAP = 1e-3  # required gap between the k-th and (k+1)-th router probability (when k < E)
MIN_CLIP_MARGIN = 1e-4  # required distance of every clip_qkv input from +-clip_qkv
MAX_FIXTURE_BYTES = 400_000
MAX_TOTAL_BYTES = 3_000_000
MAX_SEED_TRIES = 200

# ---------------------------------------------------------------------------------------------------------------
# Fixture definitions. "cfg" holds the architecture-specific config kwargs (besides the common ones added below).
# ---------------------------------------------------------------------------------------------------------------
FIXTURES = [
    dict(name="mixtral_gqa", arch="mixtral", seed=1101, B=2, S=7,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=6, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                  num_local_experts=4, num_experts_per_tok=2, rope_theta=10000.0)),
    dict(name="mixtral_k1", arch="mixtral", seed=1201, B=2, S=5,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=6, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4,
                  num_local_experts=4, num_experts_per_tok=1, rope_theta=1000000.0)),
    dict(name="mixtral_kE", arch="mixtral", seed=1301, B=2, S=9,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=6, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1,
                  num_local_experts=5, num_experts_per_tok=5, rope_theta=10000.0)),
    dict(name="olmoe_basic", arch="olmoe", seed=2101, B=2, S=6,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=5, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4,
                  num_experts=6, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=None,
                  rope_theta=10000.0)),
    dict(name="olmoe_clip", arch="olmoe", seed=2201, B=2, S=8,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=8, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  num_experts=4, num_experts_per_tok=2, norm_topk_prob=True, clip_qkv=1.0,
                  rope_theta=500000.0)),
    dict(name="qwen2moe_shared", arch="qwen2_moe", seed=3101, B=2, S=7,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=16, moe_intermediate_size=6,
                  shared_expert_intermediate_size=12, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                  decoder_sparse_step=1, mlp_only_layers=[], rope_theta=10000.0)),
    dict(name="qwen2moe_sparse_step", arch="qwen2_moe", seed=3201, B=2, S=9,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=8, moe_intermediate_size=6,
                  shared_expert_intermediate_size=8, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2,
                  num_experts=4, num_experts_per_tok=1, norm_topk_prob=False,
                  decoder_sparse_step=2, mlp_only_layers=[], rope_theta=1000000.0)),
    dict(name="qwen2moe_mlp_only", arch="qwen2_moe", seed=3301, B=2, S=6,
         cfg=dict(vocab_size=64, hidden_size=32, intermediate_size=8, moe_intermediate_size=4,
                  shared_expert_intermediate_size=6, num_hidden_layers=3,
                  num_attention_heads=2, num_key_value_heads=1,
                  num_experts=4, num_experts_per_tok=4, norm_topk_prob=True,
                  decoder_sparse_step=1, mlp_only_layers=[0], rope_theta=10000.0)),
]

ARCHS = {
    "mixtral": (MixtralConfig, MixtralForCausalLM),
    "olmoe": (OlmoeConfig, OlmoeForCausalLM),
    "qwen2_moe": (Qwen2MoeConfig, Qwen2MoeForCausalLM),
}


# ---------------------------------------------------------------------------------------------------------------
# Config helpers
# ---------------------------------------------------------------------------------------------------------------
def make_config(arch: str, cfg: dict):
    cfg = dict(cfg)
    theta = cfg.pop("rope_theta")
    config_cls, _ = ARCHS[arch]
    config = config_cls(
        **cfg,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        max_position_embeddings=64,
        tie_word_embeddings=False,
        # No padding_idx: nn.Embedding(padding_idx=p) would silently zero the gradient of row p.
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
        attn_implementation="eager",
        experts_implementation="eager",
    )
    return config


def num_experts(arch, c):
    return c.num_local_experts if arch == "mixtral" else c.num_experts


def head_dim(arch, c):
    if arch == "mixtral":
        return c.head_dim or c.hidden_size // c.num_attention_heads
    return getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)


def rope_theta(c):
    return float(c.rope_parameters["rope_theta"])


def is_sparse(arch, c, i):
    """Which decoder layers have a routed MoE block (the rule in Qwen2MoeDecoderLayer.__init__)."""
    if arch != "qwen2_moe":
        return True
    return (i not in c.mlp_only_layers) and c.num_experts > 0 and (i + 1) % c.decoder_sparse_step == 0


def sparse_layers(arch, c):
    return [i for i in range(c.num_hidden_layers) if is_sparse(arch, c, i)]


def moe_prefix(arch):
    return "block_sparse_moe" if arch == "mixtral" else "mlp"


def expert_names(arch):
    # (gate, up, down) per-expert tensor names in the hub layout
    return ("w1", "w3", "w2") if arch == "mixtral" else ("gate_proj", "up_proj", "down_proj")


# ---------------------------------------------------------------------------------------------------------------
# Hub-layout parameter list and the mapping to/from the installed transformers' module parameters
# ---------------------------------------------------------------------------------------------------------------
def hub_param_specs(arch, c):
    """Ordered list of (hub name, shape) for every parameter of the checkpoint."""
    H, V, E = c.hidden_size, c.vocab_size, num_experts(arch, c)
    nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, head_dim(arch, c)
    specs = [("model.embed_tokens.weight", (V, H))]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", (H,))]
        specs += [(p + "self_attn.q_proj.weight", (nh * hd, H)),
                  (p + "self_attn.k_proj.weight", (nkv * hd, H)),
                  (p + "self_attn.v_proj.weight", (nkv * hd, H)),
                  (p + "self_attn.o_proj.weight", (H, nh * hd))]
        if arch == "qwen2_moe":
            specs += [(p + "self_attn.q_proj.bias", (nh * hd,)),
                      (p + "self_attn.k_proj.bias", (nkv * hd,)),
                      (p + "self_attn.v_proj.bias", (nkv * hd,))]
        if arch == "olmoe":
            specs += [(p + "self_attn.q_norm.weight", (nh * hd,)),
                      (p + "self_attn.k_norm.weight", (nkv * hd,))]
        specs += [(p + "post_attention_layernorm.weight", (H,))]
        if is_sparse(arch, c, i):
            I = c.intermediate_size if arch != "qwen2_moe" else c.moe_intermediate_size
            m = p + moe_prefix(arch) + "."
            specs += [(m + "gate.weight", (E, H))]
            g, u, d = expert_names(arch)
            for e in range(E):
                specs += [(m + f"experts.{e}.{g}.weight", (I, H)),
                          (m + f"experts.{e}.{u}.weight", (I, H)),
                          (m + f"experts.{e}.{d}.weight", (H, I))]
            if arch == "qwen2_moe":
                Is = c.shared_expert_intermediate_size
                specs += [(m + "shared_expert.gate_proj.weight", (Is, H)),
                          (m + "shared_expert.up_proj.weight", (Is, H)),
                          (m + "shared_expert.down_proj.weight", (H, Is)),
                          (m + "shared_expert_gate.weight", (1, H))]
        else:
            Id = c.intermediate_size
            specs += [(p + "mlp.gate_proj.weight", (Id, H)),
                      (p + "mlp.up_proj.weight", (Id, H)),
                      (p + "mlp.down_proj.weight", (H, Id))]
    specs += [("model.norm.weight", (H,)), ("lm_head.weight", (V, H))]
    return specs


def gen_weights(arch, c, gen):
    """F32 weights in hub layout. Matrices N(0, 0.15^2); RMSNorm gains 1 + 0.1 N; biases 0.1 N; embedding 0.7 N."""
    out = {}
    for name, shape in hub_param_specs(arch, c):
        z = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name == "model.embed_tokens.weight":
            t = 0.7 * z
        elif name.endswith("norm.weight"):  # input/post_attention_layernorm, q_norm, k_norm, model.norm
            t = 1.0 + 0.1 * z
        elif name.endswith(".bias"):
            t = 0.1 * z
        else:
            t = 0.15 * z
        out[name] = t.contiguous()
    return out


def _internal_expert_names(arch, i):
    # names of the fused expert parameters / router inside the installed transformers' module tree
    p = f"model.layers.{i}.mlp."
    return p + "gate.weight", p + "experts.gate_up_proj", p + "experts.down_proj"


def hub_to_internal(arch, c, hub):
    """Hub-named tensors -> the installed transformers' state dict (fused experts [E,2I,H] = cat(gate, up))."""
    E = num_experts(arch, c)
    g, u, d = expert_names(arch)
    out = {}
    used = set()
    for i in range(c.num_hidden_layers):
        if not is_sparse(arch, c, i):
            continue
        m = f"model.layers.{i}.{moe_prefix(arch)}."
        r_name, gu_name, dn_name = _internal_expert_names(arch, i)
        out[r_name] = hub[m + "gate.weight"]
        used.add(m + "gate.weight")
        out[gu_name] = torch.stack([torch.cat([hub[m + f"experts.{e}.{g}.weight"], hub[m + f"experts.{e}.{u}.weight"]], 0)
                                    for e in range(E)])
        out[dn_name] = torch.stack([hub[m + f"experts.{e}.{d}.weight"] for e in range(E)])
        for e in range(E):
            used |= {m + f"experts.{e}.{n}.weight" for n in (g, u, d)}
    for k, v in hub.items():
        if k not in used:
            out[k] = v
    return out


def internal_to_hub(arch, c, internal):
    """Inverse of hub_to_internal (used for the gradients)."""
    E = num_experts(arch, c)
    g, u, d = expert_names(arch)
    out = {}
    used = set()
    for i in range(c.num_hidden_layers):
        if not is_sparse(arch, c, i):
            continue
        m = f"model.layers.{i}.{moe_prefix(arch)}."
        r_name, gu_name, dn_name = _internal_expert_names(arch, i)
        out[m + "gate.weight"] = internal[r_name]
        gu, dn = internal[gu_name], internal[dn_name]
        I = gu.shape[1] // 2
        for e in range(E):
            out[m + f"experts.{e}.{g}.weight"] = gu[e, :I]
            out[m + f"experts.{e}.{u}.weight"] = gu[e, I:]
            out[m + f"experts.{e}.{d}.weight"] = dn[e]
        used |= {r_name, gu_name, dn_name}
    for k, v in internal.items():
        if k not in used:
            out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------------
# Independent float64 re-implementation straight from the hub-named tensors (a cross-check of the HF model and of
# the behaviours documented in tests/fixtures/README.md)
# ---------------------------------------------------------------------------------------------------------------
def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def ref_forward(arch, c, W, ids, stats=None):
    B, S = ids.shape
    H, nh, nkv, hd = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, head_dim(arch, c)
    E, k = num_experts(arch, c), c.num_experts_per_tok
    eps = c.rms_norm_eps
    dt = torch.float64
    inv_freq = 1.0 / (rope_theta(c) ** (torch.arange(0, hd, 2, dtype=dt) / hd))
    ang = torch.arange(S, dtype=dt)[:, None] * inv_freq[None, :]
    emb = torch.cat((ang, ang), -1)
    cos, sin = emb.cos(), emb.sin()  # [S, hd]
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    renorm = True if arch == "mixtral" else bool(c.norm_topk_prob)
    clip = getattr(c, "clip_qkv", None) if arch == "olmoe" else None

    x = W["model.embed_tokens.weight"][ids]
    router = {}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        h = _rms(x, W[p + "input_layernorm.weight"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        kk = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if arch == "qwen2_moe":
            q = q + W[p + "self_attn.q_proj.bias"]
            kk = kk + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        if arch == "olmoe":  # RMSNorm over the whole projection (all heads), before the head split ...
            q = _rms(q, W[p + "self_attn.q_norm.weight"], eps)
            kk = _rms(kk, W[p + "self_attn.k_norm.weight"], eps)
        if clip is not None:  # ... then clamp q, k (normed) and v (raw), before RoPE
            if stats is not None:
                allv = torch.cat([q.reshape(-1), kk.reshape(-1), v.reshape(-1)]).detach()
                stats["clip_clamped"] = stats.get("clip_clamped", 0) + int((allv.abs() > clip).sum())
                stats["clip_total"] = stats.get("clip_total", 0) + allv.numel()
                m = float((allv.abs() - clip).abs().min())
                stats["clip_min_margin"] = min(stats.get("clip_min_margin", math.inf), m)
            q, kk, v = q.clamp(-clip, clip), kk.clamp(-clip, clip), v.clamp(-clip, clip)
        q = q.view(B, S, nh, hd).transpose(1, 2)
        kk = kk.view(B, S, nkv, hd).transpose(1, 2)
        v = v.view(B, S, nkv, hd).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        kk = kk * cos + _rotate_half(kk) * sin
        rep = nh // nkv  # query head j uses kv head j // rep
        kk = kk.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        sc = (q @ kk.transpose(-1, -2)) * hd ** -0.5
        sc = sc.masked_fill(~causal, -math.inf)
        a = torch.softmax(sc, -1) @ v  # [B, nh, S, hd]
        a = a.transpose(1, 2).reshape(B, S, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        x = x + a
        h = _rms(x, W[p + "post_attention_layernorm.weight"], eps).reshape(B * S, H)
        if is_sparse(arch, c, i):
            m = p + moe_prefix(arch) + "."
            g, u, d = expert_names(arch)
            rl = h @ W[m + "gate.weight"].T  # [T, E]
            router[i] = rl
            probs = torch.softmax(rl, -1)
            topv, topi = torch.topk(probs, k, dim=-1)
            if renorm:
                topv = topv / topv.sum(-1, keepdim=True)
            ys = torch.stack([(F.silu(h @ W[m + f"experts.{e}.{g}.weight"].T) * (h @ W[m + f"experts.{e}.{u}.weight"].T))
                              @ W[m + f"experts.{e}.{d}.weight"].T for e in range(E)])  # [E, T, H]
            tok = torch.arange(B * S)
            y = sum(topv[:, j, None] * ys[topi[:, j], tok] for j in range(k))
            if arch == "qwen2_moe":
                s = (F.silu(h @ W[m + "shared_expert.gate_proj.weight"].T) * (h @ W[m + "shared_expert.up_proj.weight"].T)) \
                    @ W[m + "shared_expert.down_proj.weight"].T
                y = y + torch.sigmoid(h @ W[m + "shared_expert_gate.weight"].T) * s
        else:
            y = (F.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        x = x + y.reshape(B, S, H)
    x = _rms(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T, router


# ---------------------------------------------------------------------------------------------------------------
# Losses (float64)
# ---------------------------------------------------------------------------------------------------------------
def entropy_loss(logits):
    lp = torch.log_softmax(logits, -1)
    return -(lp.exp() * lp).sum(-1).mean()


def nll_loss(logits, ids):
    lp = torch.log_softmax(logits[:, :-1], -1)
    return -lp.gather(-1, ids[:, 1:, None]).mean()


def aux_loss_f64(router_list, E, k):
    """Same formula as transformers' load_balancing_loss_func (no attention mask), in float64."""
    counts = torch.zeros(E, dtype=torch.float64)
    psum = torch.zeros(E, dtype=torch.float64)
    rows = 0
    for rl in router_list:
        pr = torch.softmax(rl.double(), -1)
        sel = torch.topk(pr, k, dim=-1).indices
        counts = counts + torch.bincount(sel.reshape(-1), minlength=E).double()
        psum = psum + pr.sum(0)
        rows += pr.shape[0]
    return E * ((counts / rows) * (psum / rows)).sum()


def min_topk_gap(router_list, k):
    gaps = []
    for rl in router_list:
        pr = torch.softmax(rl.detach().double(), -1)
        if k >= pr.shape[-1]:
            continue
        s = pr.sort(-1, descending=True).values
        gaps.append(float((s[:, k - 1] - s[:, k]).min()))
    return min(gaps) if gaps else None


def grads_of(loss, params):
    gs = torch.autograd.grad(loss, [p for _, p in params], retain_graph=True, allow_unused=True)
    return {n: (torch.zeros_like(p) if g is None else g) for (n, p), g in zip(params, gs)}


def max_rel_diff(a: dict, b: dict, floor=1e-3):
    """max over tensors n of max|a[n]-b[n]| / (max|b[n]| + floor * max over all tensors of max|b|).

    The floor keeps gradients that are analytically zero (e.g. the Mixtral router with k=1, where the renormalised
    top-1 weight is identically 1) from turning float32 rounding noise inside HF into a huge relative error."""
    scale = max(float(t.detach().double().abs().max()) for t in b.values())
    worst = 0.0
    for n in b:
        d = float((a[n].detach().double() - b[n].detach().double()).abs().max())
        s = float(b[n].detach().double().abs().max()) + floor * scale + 1e-300
        worst = max(worst, d / s)
    return worst


# ---------------------------------------------------------------------------------------------------------------
# One fixture
# ---------------------------------------------------------------------------------------------------------------
def build_fixture(fx, out_dir):
    arch, B, S = fx["arch"], fx["B"], fx["S"]
    config = make_config(arch, fx["cfg"])
    _, model_cls = ARCHS[arch]
    E, k = num_experts(arch, config), config.num_experts_per_tok
    sl = sparse_layers(arch, config)

    # ---- seed search: top-k not near a tie, clip_qkv inputs not near the clip boundary ---------------------------
    for attempt in range(MAX_SEED_TRIES):
        seed = fx["seed"] + attempt
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, config.vocab_size, (B, S), generator=gen, dtype=torch.int64)
        hub32 = gen_weights(arch, config, gen)
        W64 = {n: t.double() for n, t in hub32.items()}
        stats = {}
        with torch.no_grad():
            _, rref = ref_forward(arch, config, W64, ids, stats)
        gap = min_topk_gap([rref[i] for i in sl], k)
        ok = gap is None or gap > MIN_TOPK_GAP
        if "clip_min_margin" in stats:
            ok = ok and stats["clip_min_margin"] > MIN_CLIP_MARGIN and 0 < stats["clip_clamped"] < stats["clip_total"]
        if ok:
            break
    else:
        raise RuntimeError(f"{fx['name']}: no acceptable seed in {MAX_SEED_TRIES} tries")

    # ---- HF model with these weights --------------------------------------------------------------------------
    model = model_cls(config)
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    assert model.config._experts_implementation == "eager", model.config._experts_implementation
    internal = hub_to_internal(arch, config, hub32)
    own = dict(model.named_parameters())
    assert set(own) == set(internal), (sorted(set(own) ^ set(internal)))
    for n, p in own.items():
        assert tuple(p.shape) == tuple(internal[n].shape), (n, p.shape, internal[n].shape)
    model.load_state_dict(internal, strict=True)
    model.eval()

    fdir = os.path.join(out_dir, fx["name"])
    if os.path.exists(fdir):
        shutil.rmtree(fdir)
    os.makedirs(fdir)

    # config.json exactly as save_pretrained writes it; cross-check our hub layout against HF's own serialisation
    with tempfile.TemporaryDirectory() as td:
        model.save_pretrained(td)
        shutil.copyfile(os.path.join(td, "config.json"), os.path.join(fdir, "config.json"))
        with safe_open(os.path.join(td, "model.safetensors"), "pt") as f:
            keys = set(f.keys())
            assert keys == set(hub32), ("save_pretrained layout differs from the hub layout", sorted(keys ^ set(hub32)))
            for n in keys:
                assert torch.equal(f.get_tensor(n), hub32[n]), n
    save_file(hub32, os.path.join(fdir, "model.safetensors"), metadata={"format": "pt"})
    save_file({"input_ids": ids}, os.path.join(fdir, "input.safetensors"), metadata={"format": "pt"})
    cfg_json = json.load(open(os.path.join(fdir, "config.json")))
    assert cfg_json["model_type"] == arch and cfg_json["dtype"] == "float32", cfg_json

    # ---- float64 reference through the HF model ---------------------------------------------------------------
    model.double()
    router_hook = {}
    hooks = []
    for i in sl:
        gate = model.model.layers[i].mlp.gate
        hooks.append(gate.register_forward_hook(lambda mod, inp, out, i=i: router_hook.__setitem__(i, out[0])))
    out = model(input_ids=ids, output_router_logits=True, use_cache=False)
    for h in hooks:
        h.remove()
    logits = out.logits
    assert logits.dtype == torch.float64
    rl_list = list(out.router_logits)
    assert len(rl_list) == len(sl), (len(rl_list), sl)
    router = {}
    for i, r in zip(sl, rl_list):  # output_router_logits returns only the sparse layers, in layer order
        assert r.shape == (B * S, E) and torch.equal(r, router_hook[i]), i
        router[i] = r

    params = list(model.named_parameters())
    losses = {
        "entropy": entropy_loss(logits),
        "nll": nll_loss(logits, ids),
        "aux": aux_loss_f64(rl_list, E, k),
    }
    hf_aux = out.aux_loss  # transformers' load_balancing_loss_func, accumulated in float32
    aux_val, hf_aux_val = float(losses["aux"].detach()), float(hf_aux.detach())
    assert abs(hf_aux_val - aux_val) <= 1e-5 * max(1.0, abs(aux_val)), (hf_aux_val, aux_val)
    grads = {name: internal_to_hub(arch, config, grads_of(l, params)) for name, l in losses.items()}
    # HF's own float32-accumulated aux loss gives (nearly) the same gradient
    hf_aux_grads = internal_to_hub(arch, config, grads_of(hf_aux, params))
    aux_vs_hf = max_rel_diff(hf_aux_grads, grads["aux"]) if E != k else 0.0
    assert aux_vs_hf < 1e-4, aux_vs_hf

    # ---- independent float64 re-implementation: logits, router logits and all gradients must agree ----------------
    Wr = {n: t.double().requires_grad_(True) for n, t in hub32.items()}
    ref_logits, ref_router = ref_forward(arch, config, Wr, ids)
    names = list(Wr)
    ref_losses = {"entropy": entropy_loss(ref_logits), "nll": nll_loss(ref_logits, ids),
                  "aux": aux_loss_f64([ref_router[i] for i in sl], E, k)}
    ref_dev = {"logits": max_rel_diff({"x": logits}, {"x": ref_logits}),
               "router_logits": max_rel_diff({i: router[i] for i in sl}, {i: ref_router[i] for i in sl})}
    for name, l in ref_losses.items():
        gs = torch.autograd.grad(l, [Wr[n] for n in names], retain_graph=True, allow_unused=True)
        rg = {n: (torch.zeros_like(Wr[n]) if g is None else g) for n, g in zip(names, gs)}
        assert set(rg) == set(grads[name])
        lv = float(l.detach())
        ref_dev[f"loss_{name}"] = abs(lv - float(losses[name].detach())) / max(abs(lv), 1e-12)
        if name == "aux" and E == k:
            continue  # aux loss is the constant E when k == E: all gradients are rounding noise around 0
        ref_dev[f"grad_{name}"] = max_rel_diff(grads[name], rg)
    # HF rounds to float32 inside (RMSNorm input, attention/router softmax, RoPE tables), so agreement is ~1e-6;
    # a behavioural mismatch (wrong order of ops, wrong expert mapping, ...) shows up as O(1e-2..1).
    for key, v in ref_dev.items():
        assert v < 1e-4, (fx["name"], key, v)

    # ---- write expected files ------------------------------------------------------------------------------------
    def f32(t):
        return t.detach().to(torch.float32).contiguous()

    common = {"logits": f32(logits)}
    for i in sl:
        common[f"router_logits.{i}"] = f32(router[i])
    for name in ("entropy", "nll", "aux"):
        d = dict(common) if name != "aux" else {}
        d["loss"] = f32(losses[name]).reshape(())
        for n, g in grads[name].items():
            assert tuple(g.shape) == tuple(hub32[n].shape), n
            d[f"grad.{n}"] = f32(g)
        save_file(d, os.path.join(fdir, f"expected_{name}.safetensors"), metadata={"format": "pt"})

    # ---- reload the directory with from_pretrained ------------------------------------------------------------------
    stored_logits = common["logits"]
    re32 = AutoModelForCausalLM.from_pretrained(fdir, attn_implementation="eager", experts_implementation="eager",
                                                dtype=torch.float32)
    re32.eval()
    assert type(re32) is model_cls
    for n, p in re32.named_parameters():
        assert torch.equal(p, internal[n]), n
    with torch.no_grad():
        l32 = re32(input_ids=ids, use_cache=False).logits
        f32_dev = float((l32 - stored_logits).abs().max())
        assert torch.allclose(l32, stored_logits, rtol=1e-4, atol=1e-4), f32_dev
        re64 = re32.double()
        l64 = re64(input_ids=ids, use_cache=False).logits
        assert torch.equal(l64.to(torch.float32), stored_logits), "reloaded float64 logits differ from the stored ones"

    for f in os.listdir(fdir):
        os.chmod(os.path.join(fdir, f), 0o644)
    size = sum(os.path.getsize(os.path.join(fdir, f)) for f in os.listdir(fdir))
    assert size < MAX_FIXTURE_BYTES, (fx["name"], size)

    c = config
    entry = {
        "arch": arch,
        "model_type": cfg_json["model_type"],
        "B": B, "S": S,
        "seed": seed,
        "config": {
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads, "num_key_value_heads": c.num_key_value_heads,
            "head_dim": head_dim(arch, c), "head_dim_in_config": cfg_json.get("head_dim"),
            "num_experts": E, "num_experts_per_tok": k,
            "intermediate_size": c.intermediate_size,
            "rope_theta": rope_theta(c), "rms_norm_eps": c.rms_norm_eps,
        },
        "sparse_layers": sl,
        "params": sum(t.numel() for t in hub32.values()),
        "min_topk_gap": gap,
        "losses": {n: float(l.detach()) for n, l in losses.items()},
        "hf_aux_loss_f32": hf_aux_val,
        "max_rel_dev_hf_vs_independent_f64": ref_dev,
        "max_abs_dev_f32_reload_logits": f32_dev,
        "bytes": size,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    if arch == "mixtral":
        entry["config"]["renormalize_topk"] = True
    else:
        entry["config"]["norm_topk_prob"] = bool(c.norm_topk_prob)
    if arch == "olmoe":
        entry["config"]["clip_qkv"] = c.clip_qkv
        if "clip_clamped" in stats:
            entry["clip"] = {"clamped": stats["clip_clamped"], "total": stats["clip_total"],
                             "min_margin": stats["clip_min_margin"]}
    if arch == "qwen2_moe":
        entry["config"].update(moe_intermediate_size=c.moe_intermediate_size,
                               shared_expert_intermediate_size=c.shared_expert_intermediate_size,
                               decoder_sparse_step=c.decoder_sparse_step, mlp_only_layers=list(c.mlp_only_layers),
                               qkv_bias=bool(c.qkv_bias))
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--only", nargs="*", help="fixture names to (re)build; default all")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)

    man_path = os.path.join(args.out, "manifest.json")
    manifest = {"fixtures": {}}
    if args.only and os.path.exists(man_path):
        manifest = json.load(open(man_path))
    manifest["generator"] = "scripts/make_fixtures.py"
    manifest["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                            "safetensors": __import__("safetensors").__version__, "numpy": np.__version__,
                            "python": sys.version.split()[0]}
    manifest["min_topk_gap_required"] = MIN_TOPK_GAP
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        print(f"building {fx['name']} ...", flush=True)
        manifest["fixtures"][fx["name"]] = build_fixture(fx, args.out)
        e = manifest["fixtures"][fx["name"]]
        print(f"  seed {e['seed']}  min_topk_gap {e['min_topk_gap']}  {e['bytes']} bytes  "
              f"dev {max(e['max_rel_dev_hf_vs_independent_f64'].values()):.2e}", flush=True)
    manifest["fixtures"] = {fx["name"]: manifest["fixtures"][fx["name"]] for fx in FIXTURES
                            if fx["name"] in manifest["fixtures"]}
    with open(man_path, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")

    # Only what this script owns (other generators may share the folder, e.g. tests/fixtures/tokenizers/).
    total = os.path.getsize(man_path)
    readme = os.path.join(args.out, "README.md")
    if os.path.exists(readme):
        total += os.path.getsize(readme)
    for fx in FIXTURES:
        fdir = os.path.join(args.out, fx["name"])
        if os.path.isdir(fdir):
            total += sum(os.path.getsize(os.path.join(fdir, x)) for x in os.listdir(fdir))
    print(f"total {total} bytes (model fixtures + manifest + README)")
    assert total < MAX_TOTAL_BYTES, total


if __name__ == "__main__":
    main()
