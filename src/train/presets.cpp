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
  } else if (name == "tiny") {  // seconds on a laptop core; for tests and smoke runs
    m.hidden_size = 32, m.num_layers = 2, m.num_heads = 4, m.num_kv_heads = 2, m.head_dim = 8;
    m.num_experts = 4, m.top_k = 2, m.intermediate_size = m.moe_intermediate_size = 64;
    t.seq = 64, t.batch = 8, t.steps = 150;
    t.lr = {1e-2, 0.1, 10, 150};
    t.eval_every = 50, t.ckpt_every = 50, t.eval_tokens = 16384;
  } else {
    fail("unknown preset \"{}\" (expected tiny or small)", name);
  }
  t.adamw = {t.lr.peak, 0.9, 0.95, 1e-8, 0.1};
  m.router_aux_loss_coef = t.lb_coef;
  return t;
}

}  // namespace wattmoe
