#include "profile/blocks_cpu.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/linear.h"

namespace wattmoe {

std::vector<float> random_params(const ModelConfig& c, uint64_t seed) {
  const ParamLayout layout = ParamLayout::build(c);
  std::vector<float> p(size_t(layout.total()));
  Rng rng(seed);
  for (const ParamSpec& s : layout.specs()) {
    float* w = p.data() + s.offset;
    if (!s.is_matrix()) {
      std::fill(w, w + s.numel, 1.0f);
      continue;
    }
    const double a = std::sqrt(3.0 / double(s.shape[1]));  // uniform(-a, a) has std 1/√in
    for (int64_t i = 0; i < s.numel; ++i) w[i] = float((2 * rng.uniform() - 1) * a);
  }
  return p;
}

CpuBlockExecutor::CpuBlockExecutor(const ModelConfig& c, const float* params, int max_tokens, uint64_t seed)
    : c_(c), layout_(ParamLayout::build(c)), max_tokens_(max_tokens) {
  WATTMOE_REQUIRE(max_tokens >= 1, "profile: max tokens {}: expected >= 1", max_tokens);
  view_ = ModelView<float>::bind(c_, layout_, const_cast<float*>(params));
  const size_t T = size_t(max_tokens), H = size_t(c.hidden_size);
  const size_t I = size_t(std::max(c.moe_intermediate_size, c.shared_expert_intermediate_size));
  x_.resize(T * H);
  Rng rng(seed);
  for (auto& v : x_) v = float((2 * rng.uniform() - 1) * std::sqrt(3.0));
  g_.resize(T * I), u_.resize(T * I), h_.resize(T * I);
  out_.resize(T * std::max<size_t>(H, size_t(c.num_experts)));
  q_.resize(T * size_t(c.q_dim())), attn_.resize(T * size_t(c.q_dim()));
  k_.resize(T * size_t(c.kv_dim())), v_.resize(T * size_t(c.kv_dim()));
}

void CpuBlockExecutor::check_tokens(int tokens) const {
  WATTMOE_CHECK(tokens >= 1 && tokens <= max_tokens_, "tokens {} outside 1..{}", tokens, max_tokens_);
}

void CpuBlockExecutor::ffn(const FfnView<float>& f, int I, int T) {
  const int H = c_.hidden_size;
  ops::linear_fwd<float>(x_.data(), f.gate, nullptr, g_.data(), T, H, I);
  ops::linear_fwd<float>(x_.data(), f.up, nullptr, u_.data(), T, H, I);
  ops::swiglu_fwd<float>(g_.data(), u_.data(), h_.data(), int64_t(T) * I);
  ops::linear_fwd<float>(h_.data(), f.down, nullptr, out_.data(), T, I, H);
}

void CpuBlockExecutor::attention(int layer, int T) {
  check_tokens(T);
  const LayerView<float>& L = view_.layers[size_t(layer)];
  const int H = c_.hidden_size, qd = c_.q_dim(), kvd = c_.kv_dim();
  ops::linear_fwd<float>(x_.data(), L.wq, L.bq, q_.data(), T, H, qd);
  ops::linear_fwd<float>(x_.data(), L.wk, L.bk, k_.data(), T, H, kvd);
  ops::linear_fwd<float>(x_.data(), L.wv, L.bv, v_.data(), T, H, kvd);
  const ops::AttnShape s{T, T, 0, c_.num_heads, c_.num_kv_heads, c_.head_dim, qd, kvd};
  ops::attention_fwd<float>(q_.data(), k_.data(), v_.data(), attn_.data(), nullptr, s);
  ops::linear_fwd<float>(attn_.data(), L.wo, nullptr, out_.data(), T, qd, H);
}

void CpuBlockExecutor::router(int layer, int T) {
  check_tokens(T);
  ops::linear_fwd<float>(x_.data(), view_.layers[size_t(layer)].router, nullptr, out_.data(), T, c_.hidden_size,
                         c_.num_experts);
}

void CpuBlockExecutor::expert(int layer, int e, int T) {
  check_tokens(T);
  ffn(view_.layers[size_t(layer)].experts[size_t(e)], c_.moe_intermediate_size, T);
}

void CpuBlockExecutor::shared(int layer, int T) {
  check_tokens(T);
  ffn(view_.layers[size_t(layer)].shared, c_.shared_expert_intermediate_size, T);
}

}  // namespace wattmoe
