#include "eval/step_work.h"

#include <algorithm>

#include "core/error.h"

namespace wattmoe {

StepWork& StepWork::operator+=(const StepWork& o) {
  expert_flops += o.expert_flops, expert_bytes += o.expert_bytes, expert_j += o.expert_j;
  dense_flops += o.dense_flops, dense_bytes += o.dense_bytes, dense_j += o.dense_j;
  return *this;
}

StepWorkModel::StepWorkModel(const ModelConfig& c, double weight_bytes, double act_bytes, HardwareCoeffs hw)
    : c_(c),
      wb_(weight_bytes),
      ab_(act_bytes),
      hw_(hw),
      experts_(AnalyticCostModel::uniform(c.num_layers, c.num_experts,
                                          ExpertShape{c.hidden_size, c.moe_intermediate_size, weight_bytes, act_bytes, 3},
                                          hw)) {}

double StepWorkModel::block_joules(double flops, double bytes) const {
  if (flops <= 0 && bytes <= 0) return 0;
  const double t = std::max(flops / hw_.peak_flops, bytes / hw_.bandwidth_bytes_per_s) + hw_.launch_s;
  return hw_.static_w * t + 1e-12 * (hw_.pj_per_flop * flops + hw_.pj_per_byte * bytes);
}

StepWork StepWorkModel::dense(int64_t seqs, int64_t new_tokens, int64_t context) const {
  WATTMOE_REQUIRE(seqs >= 1 && new_tokens >= 1 && context >= new_tokens,
                  "step work: {} sequences of {} new tokens over {} positions", seqs, new_tokens, context);
  const double H = c_.hidden_size, q = c_.q_dim(), kv = c_.kv_dim(), E = c_.num_experts, V = c_.vocab_size;
  const double nh = c_.num_heads, hd = c_.head_dim, n = double(new_tokens), ctx = double(context);
  const double N = double(seqs) * n;
  StepWork w;
  const auto add = [&](double flops, double bytes) {
    w.dense_flops += flops, w.dense_bytes += bytes, w.dense_j += block_joules(flops, bytes);
  };
  const auto ffn = [&](double I) {  // a SwiGLU block every row takes (shared expert, dense MLP)
    add(6 * N * H * I, 3 * H * I * wb_ + N * (2 * H + 2 * I) * ab_);
  };
  for (int l = 0; l < c_.num_layers; ++l) {
    add(2 * N * H * (2 * q + 2 * kv), H * (2 * q + 2 * kv) * wb_ + N * (2 * H + 2 * q + 2 * kv) * ab_);
    add(double(seqs) * 4 * nh * hd * n * (ctx - (n - 1) / 2),
        double(seqs) * (nh * n * ctx * 12 + 2 * ctx * kv * ab_));
    if (c_.is_moe_layer(l)) {
      add(2 * N * H * E, E * H * wb_ + N * (H + E) * ab_);
      if (c_.shared_expert_intermediate_size > 0) ffn(c_.shared_expert_intermediate_size);
    } else {
      ffn(c_.intermediate_size);
    }
  }
  add(2 * N * H * V, V * H * wb_ + N * (H + V) * ab_);
  return w;
}

StepWork StepWorkModel::experts(int layer, const std::vector<int32_t>& counts) const {
  WATTMOE_REQUIRE(int(counts.size()) == c_.num_experts, "step work: layer {} counts for {} experts, the model has {}",
                  layer, counts.size(), c_.num_experts);
  StepWork w;
  for (int e = 0; e < c_.num_experts; ++e) {
    const double n = counts[size_t(e)];
    if (n <= 0) continue;
    w.expert_flops += experts_.flops(layer, e, n);
    w.expert_bytes += experts_.bytes(layer, e, n);
    w.expert_j += experts_.exact_joules(layer, e, n);
  }
  return w;
}

}  // namespace wattmoe
