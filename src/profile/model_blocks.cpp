#include "profile/model_blocks.h"

#include "core/error.h"

namespace wattmoe {

ExpertShape expert_shape(const ModelConfig& c, Precision p, bool shared) {
  ExpertShape s;
  s.hidden = c.hidden_size;
  s.ffn = shared ? c.shared_expert_intermediate_size : c.moe_intermediate_size;
  s.weight_bytes = p.weight_bytes;
  s.act_bytes = p.act_bytes;
  s.matrices = 3;
  return s;
}

namespace {

// energy/expert_work.h, the analytic cost model's own formula, so that a hardware fit on these numbers means the
// same to it.
Work expert_call_work(const ExpertShape& s, int tokens) {
  const ExpertWork w = expert_work(s, tokens);
  return Work{w.flops, w.bytes, ""};
}

}  // namespace

Work router_work(const ModelConfig& c, Precision p, int tokens) {
  const double H = c.hidden_size, E = c.num_experts, T = tokens;
  return Work{2 * H * E * T, E * H * p.weight_bytes + (H + E) * p.act_bytes * T, ""};
}

Work attention_work(const ModelConfig& c, Precision p, int tokens) {
  const double H = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), T = tokens;
  const double proj = 2 * q + 2 * kv;  // q, k, v and o weight rows (o is [H, q])
  const double flops = 2 * T * H * proj + 2.0 * c.num_heads * c.head_dim * T * (T + 1);
  const double bytes = H * proj * p.weight_bytes + T * (2 * H + 2 * q + 2 * kv) * p.act_bytes +
                       double(c.num_heads) * T * T * 12;
  return Work{flops, bytes, ""};
}

void require_moe_layers(const ModelConfig& c, const std::string& what) {
  for (int l = 0; l < c.num_layers; ++l)
    WATTMOE_REQUIRE(c.is_moe_layer(l),
                    "{}: layer {} is a dense MLP layer (mlp_only_layers / decoder_sparse_step): profile prices MoE "
                    "layers only, and a cost table lists every layer", what, l);
}

std::vector<ProfileBlock> model_blocks(const ModelConfig& c, Precision p, BlockExecutor* exec) {
  std::vector<ProfileBlock> out;
  const ExpertShape es = expert_shape(c, p), ss = expert_shape(c, p, true);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string pre = "layer" + std::to_string(l);
    ProfileBlock a{pre + ".attention", "attention", l, -1, nullptr, [c, p](int T) { return attention_work(c, p, T); }};
    ProfileBlock r{pre + ".router", "router", l, -1, nullptr, [c, p](int T) { return router_work(c, p, T); }};
    if (exec) {
      a.run = [exec, l](int T) { exec->attention(l, T); };
      r.run = [exec, l](int T) { exec->router(l, T); };
    }
    out.push_back(std::move(a));
    out.push_back(std::move(r));
    for (int e = 0; e < c.num_experts; ++e) {
      ProfileBlock b{pre + ".expert" + std::to_string(e), "expert", l, e, nullptr,
                     [es](int T) { return expert_call_work(es, T); }};
      if (exec) b.run = [exec, l, e](int T) { exec->expert(l, e, T); };
      out.push_back(std::move(b));
    }
    if (c.shared_expert_intermediate_size > 0) {
      ProfileBlock s{pre + ".shared", "shared", l, -1, nullptr, [ss](int T) { return expert_call_work(ss, T); }};
      if (exec) s.run = [exec, l](int T) { exec->shared(l, T); };
      out.push_back(std::move(s));
    }
  }
  if (exec)
    for (ProfileBlock& b : out) b.calls_per_run = exec->calls_per_run();
  return out;
}

}  // namespace wattmoe
