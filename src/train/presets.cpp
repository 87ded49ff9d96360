#include "core/error.h"
#include "train/trainer.h"

namespace wattmoe {

TrainConfig train_preset(const std::string& name) {
  TrainConfig t;
  t.preset = name;
  ModelConfig& m = t.model;
  m.arch = Arch::Mixtral;
  m.vocab_size = 256;
  m.rope_theta = 1e4;
  m.rms_norm_eps = 1e-5;
  m.tie_word_embeddings = false;
  m.norm_topk_prob = true;
  m.max_position_embeddings = 4096;
  if (name == "small") {  // the reference schedule (see docs/results.md)
    m.hidden_size = 128, m.num_layers = 4, m.num_heads = 4, m.num_kv_heads = 2, m.head_dim = 32;
    m.num_experts = 8, m.top_k = 2, m.intermediate_size = m.moe_intermediate_size = 256;
    t.seq = 128, t.batch = 16, t.steps = 3000;
    t.lr = {3e-3, 0.1, 100, 3000};
    t.eval_every = 250, t.ckpt_every = 100;
  } else if (name == "medium") {
    // bench/train_vs_torch.py's medium shape: ~107M parameters (~30M active per token), trained on the GPU
    // (`wattmoe train --device cuda --preset medium`, scripts/device/train_medium.sh) as the model of the measured
    // energy benchmark of routing policies (bench/energy_policies.cpp).
    m.hidden_size = 512, m.num_layers = 8, m.num_heads = 8, m.num_kv_heads = 4, m.head_dim = 64;
    m.num_experts = 8, m.top_k = 2, m.intermediate_size = m.moe_intermediate_size = 1024;
    // Schedule sized for about 4 minutes: 32 × 256 = 8192 tokens a step at the ~110k tokens/s our fp32 GPU trainer
    // measured on this shape (docs/performance.md) is ~13.4 steps/s, so 3000 steps ≈ 225 s of steps plus ~15 s of
    // validation, checkpoints and start-up. 3000 × 8192 = 24.6M tokens is ~6 passes over kjv.train (~4.1 MB): more
    // than the data supports for 107M weights, so the val curve (every 250 steps) shows where it starts to overfit.
    // Peak lr 1e-3: the small preset's tuned 3e-3 at H = 128, scaled by width (~1/H, as μP-style transfer
    // suggests) gives 7.5e-4 at H = 512; a 3000-step run tolerates a little more, and 1e-3 with 200 warmup steps
    // (~7%), gradient clipping at 1.0 and AdamW β2 = 0.95 is inside the range 100M-parameter transformers train
    // stably at (GPT-3 125M: 6e-4 at a far larger batch and schedule). Cosine to 10% of the peak.
    t.seq = 256, t.batch = 32, t.steps = 3000;
    t.lr = {1e-3, 0.1, 200, 3000};
    // Validation on the first 65,536 val tokens every 250 steps (~0.2 s each); checkpoints (model + AdamW moments,
    // ~1.3 GB) every 1000 steps: SIGINT/SIGTERM checkpoints anyway, so a time limit loses nothing.
    t.eval_every = 250, t.ckpt_every = 1000;
  } else if (name == "tiny") {  // seconds on a laptop core; for tests and smoke runs
    m.hidden_size = 32, m.num_layers = 2, m.num_heads = 4, m.num_kv_heads = 2, m.head_dim = 8;
    m.num_experts = 4, m.top_k = 2, m.intermediate_size = m.moe_intermediate_size = 64;
    t.seq = 64, t.batch = 8, t.steps = 150;
    t.lr = {1e-2, 0.1, 10, 150};
    t.eval_every = 50, t.ckpt_every = 50, t.eval_tokens = 16384;
  } else {
    fail("unknown preset \"{}\" (expected tiny, small or medium)", name);
  }
  t.adamw = {t.lr.peak, 0.9, 0.95, 1e-8, 0.1};
  m.router_aux_loss_coef = t.lb_coef;
  return t;
}

}  // namespace wattmoe
