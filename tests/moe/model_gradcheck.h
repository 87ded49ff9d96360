// Small random MoE models and a whole-model gradient check in double against central finite differences.
// Shared by tests/model/gradcheck_test.cpp, tests/model/determinism_test.cpp and tests/moe/policy_gradcheck_test.cpp.
//
// The check: L = objective(logits) + lb_coef·load_balance + z_coef·z_loss, analytic ∂L/∂θ from
// forward → objective_loss → router_aux_losses → backward, compared with (L(θ+h) − L(θ−h)) / 2h on sampled
// coordinates (every tensor, at least `per_tensor` coordinates; `per_kind` per ParamKind; every router weight).
// L is piecewise smooth: top-k selection and clip_qkv clamping are kinks. A coordinate whose ±h evaluations change
// any routing (the policy's selection or the model's own top-k that the load-balancing loss counts) or any clamp
// decision is skipped and counted; the test fails if too many are.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/objective.h"
#include "model/transformer.h"

namespace wattmoe::test {

// Mixtral with GQA (4 heads over 2 kv heads) and head_dim ≠ hidden / heads; always-renormalised top-2 of 4.
inline ModelConfig mixtral_config(int layers = 2) {
  ModelConfig c;
  c.arch = Arch::Mixtral;
  c.vocab_size = 29, c.hidden_size = 16, c.num_layers = layers;
  c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 6;
  c.intermediate_size = c.moe_intermediate_size = 8;
  c.num_experts = 4, c.top_k = 2, c.norm_topk_prob = true;
  c.rms_norm_eps = 1e-5, c.rope_theta = 1e4, c.max_position_embeddings = 128;
  return c;
}

// OLMoE: q/k norm over the whole projection, clip_qkv, renormalised top-2 of 5.
inline ModelConfig olmoe_config(int layers = 2, double clip = 1.0) {
  ModelConfig c;
  c.arch = Arch::Olmoe;
  c.vocab_size = 31, c.hidden_size = 16, c.num_layers = layers;
  c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 4;
  c.intermediate_size = c.moe_intermediate_size = 6;
  c.num_experts = 5, c.top_k = 2, c.norm_topk_prob = true;
  c.qk_norm = true, c.clip_qkv = clip;
  c.rms_norm_eps = 1e-5, c.rope_theta = 5e5, c.max_position_embeddings = 128;
  return c;
}

// Qwen2-MoE: layer 0 dense (mlp_only_layers), the others sparse with a gated shared expert, q/k/v biases, MQA,
// top-2 of 4 not renormalised, tied embeddings.
inline ModelConfig qwen2moe_config(int layers = 2) {
  ModelConfig c;
  c.arch = Arch::Qwen2Moe;
  c.vocab_size = 27, c.hidden_size = 16, c.num_layers = layers;
  c.num_heads = 4, c.num_kv_heads = 1, c.head_dim = 4;
  c.intermediate_size = 12, c.moe_intermediate_size = 6, c.shared_expert_intermediate_size = 10;
  c.num_experts = 4, c.top_k = 2, c.norm_topk_prob = false;
  c.qkv_bias = true, c.mlp_only_layers = {0}, c.tie_word_embeddings = true;
  c.rms_norm_eps = 1e-6, c.rope_theta = 1e6, c.max_position_embeddings = 128;
  return c;
}

struct NamedConfig {
  std::string name;
  ModelConfig config;
};
inline std::vector<NamedConfig> all_arch_configs(int layers = 2) {
  return {{"mixtral_gqa", mixtral_config(layers)}, {"olmoe_clip", olmoe_config(layers)},
          {"qwen2moe_shared_dense", qwen2moe_config(layers)}};
}

// Matrices N(0, 0.2²) (routing well separated), RMSNorm gains 1 + 0.1·N, biases 0.1·N, embedding N(0, 0.5²).
template <class T>
std::vector<T> random_params(const ParamLayout& layout, uint64_t seed) {
  std::vector<T> p(size_t(layout.total()));
  Rng rng(seed);
  for (const ParamSpec& s : layout.specs()) {
    const double mean = s.kind == ParamKind::Norm ? 1.0 : 0.0;
    const double sd = s.kind == ParamKind::Norm ? 0.1 : s.kind == ParamKind::Bias ? 0.1
                      : s.kind == ParamKind::Embedding ? 0.5 : 0.2;
    for (int64_t i = 0; i < s.numel; ++i) p[size_t(s.offset + i)] = T(mean + sd * rng.normal());
  }
  return p;
}

inline std::vector<int32_t> random_ids(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(rng.below(uint64_t(vocab)));
  return ids;
}

inline const char* kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::Embedding: return "embedding";
    case ParamKind::Norm: return "norm";
    case ParamKind::Attention: return "attention";
    case ParamKind::Bias: return "bias";
    case ParamKind::Router: return "router";
    case ParamKind::Expert: return "expert";
    case ParamKind::SharedExpert: return "shared_expert";
    case ParamKind::SharedGate: return "shared_gate";
    case ParamKind::DenseMlp: return "dense_mlp";
    case ParamKind::LmHead: return "lm_head";
    case ParamKind::Lora: return "lora";
  }
  return "?";
}

struct LossSpec {
  bool use_objective = true;
  Objective objective = Objective::Entropy;
  double lb_coef = 0, z_coef = 0;
  RouterSelect<double> select;  // null: the model's own top-k
};

// Everything that makes L non-smooth: the routing used, the model's own top-k (the load-balancing loss counts it),
// and which q/k/v entries clip_qkv clamps.
struct Kinks {
  std::vector<int32_t> route;
  std::vector<int8_t> clamp;
  bool operator==(const Kinks&) const = default;
};

inline double eval_loss(const Transformer<double>& m, const std::vector<double>& p, const std::vector<int32_t>& ids,
                        int B, int S, const LossSpec& spec, Activations<double>& acts, std::vector<double>* dlogits,
                        Kinks* kinks) {
  const ModelConfig& c = m.config();
  m.forward(p.data(), ids.data(), B, S, acts, nullptr, spec.select);
  double L = 0;
  if (dlogits) dlogits->assign(acts.logits.size(), 0.0);
  if (spec.use_objective)
    L += objective_loss<double>(spec.objective, acts.logits.data(), ids.data(), B, S, c.vocab_size,
                                dlogits ? dlogits->data() : nullptr);
  const AuxLossValues aux = m.router_aux_losses(acts, spec.lb_coef, spec.z_coef);
  L += spec.lb_coef * aux.load_balance + spec.z_coef * aux.z;
  if (kinks) {
    kinks->route.clear(), kinks->clamp.clear();
    for (const auto& a : acts.layers) {
      kinks->route.insert(kinks->route.end(), a.routing.expert.begin(), a.routing.expert.end());
      if (!a.router_probs.empty()) {
        Routing own;
        select_topk<double>(a.router_probs.data(), acts.tokens(), c.num_experts, c.top_k, own);
        kinks->route.insert(kinks->route.end(), own.expert.begin(), own.expert.end());
      }
      if (c.clip_qkv > 0)
        for (const auto* v : {&a.q_clip, &a.k_clip, &a.v_clip})
          for (double x : *v) kinks->clamp.push_back(x > c.clip_qkv ? 1 : x < -c.clip_qkv ? -1 : 0);
    }
  }
  return L;
}

// Smallest distance of a pre-clamp q/k/v value to ±clip (infinity without clip), and the clamped fraction.
inline double clip_margin(const ModelConfig& c, const Activations<double>& acts, double* clamped_fraction) {
  double margin = INFINITY, n = 0, clamped = 0;
  for (const auto& a : acts.layers)
    for (const auto* v : {&a.q_clip, &a.k_clip, &a.v_clip})
      for (double x : *v) {
        margin = std::min(margin, std::abs(std::abs(x) - c.clip_qkv));
        n += 1, clamped += std::abs(x) > c.clip_qkv ? 1 : 0;
      }
  if (clamped_fraction) *clamped_fraction = n > 0 ? clamped / n : 0;
  return margin;
}

struct GradCheckOptions {
  int per_kind = 30;        // random coordinates per ParamKind (all router weights are always checked)
  int per_tensor = 2;       // and at least this many in every tensor
  double h = 1e-6;          // central-difference step
  // Normalized error per kind: max|analytic − fd| / max|fd|. FD in double with h = 1e-6 has truncation error
  // ~h²·|L'''| ≈ 1e-12 and rounding error ~ε·|L|/h ≈ 1e-10·|L| (|L| ≤ ~4), both ≪ 1e-6 of the largest gradient
  // of a kind (≳ 1e-3 here); a wrong term in backward shows up as O(1e-2..1).
  double tol = 1e-6;
  double max_skip_fraction = 0.05;
  uint64_t seed = 77;
};

struct GradCheckResult {
  int checked = 0, skipped = 0;
  std::map<std::string, double> err_by_kind;
};

inline GradCheckResult grad_check(const Transformer<double>& m, std::vector<double> p, const std::vector<int32_t>& ids,
                                  int B, int S, const LossSpec& spec, const GradCheckOptions& opt = {}) {
  const ParamLayout& layout = m.layout();
  GradCheckResult res;
  Activations<double> acts;
  std::vector<double> dlogits;
  Kinks base;
  eval_loss(m, p, ids, B, S, spec, acts, &dlogits, &base);
  for (const auto& a : acts.logits) EXPECT_TRUE(std::isfinite(a));
  std::vector<double> grads(p.size(), 0.0);
  m.backward(p.data(), ids.data(), dlogits.data(), acts, grads.data());
  for (size_t i = 0; i < grads.size(); ++i)
    if (!std::isfinite(grads[i])) {
      ADD_FAILURE() << "gradient " << i << " is not finite";
      return res;
    }

  // Coordinates: all router weights; per kind a random sample; per tensor a minimum.
  Rng rng(opt.seed);
  std::map<ParamKind, std::vector<int64_t>> pool;
  std::vector<std::pair<ParamKind, int64_t>> coords;
  for (const ParamSpec& s : layout.specs()) {
    std::vector<int64_t> idx(size_t(s.numel));
    std::iota(idx.begin(), idx.end(), s.offset);
    if (s.kind == ParamKind::Router) {
      for (int64_t i : idx) coords.push_back({s.kind, i});
      continue;
    }
    for (int j = 0; j < opt.per_tensor && j < int(idx.size()); ++j) {
      std::swap(idx[size_t(j)], idx[size_t(j) + size_t(rng.below(idx.size() - size_t(j)))]);
      coords.push_back({s.kind, idx[size_t(j)]});
    }
    auto& pk = pool[s.kind];
    pk.insert(pk.end(), idx.begin() + std::min<int64_t>(opt.per_tensor, s.numel), idx.end());
  }
  for (auto& [kind, idx] : pool)
    for (int j = 0; j < opt.per_kind && j < int(idx.size()); ++j) {
      std::swap(idx[size_t(j)], idx[size_t(j) + size_t(rng.below(idx.size() - size_t(j)))]);
      coords.push_back({kind, idx[size_t(j)]});
    }

  std::map<ParamKind, std::pair<double, double>> err;  // kind → (max |a − n|, max |n|)
  std::map<ParamKind, std::string> worst;
  Kinks kp, km;
  for (auto [kind, i] : coords) {
    const double x0 = p[size_t(i)];
    p[size_t(i)] = x0 + opt.h;
    const double lp = eval_loss(m, p, ids, B, S, spec, acts, nullptr, &kp);
    p[size_t(i)] = x0 - opt.h;
    const double lm = eval_loss(m, p, ids, B, S, spec, acts, nullptr, &km);
    p[size_t(i)] = x0;
    if (!(kp == base) || !(km == base)) {
      ++res.skipped;
      continue;
    }
    ++res.checked;
    const double num = (lp - lm) / (2 * opt.h), ana = grads[size_t(i)];
    auto& e = err[kind];
    if (std::abs(ana - num) > e.first) {
      e.first = std::abs(ana - num);
      worst[kind] = "param " + std::to_string(i) + ": analytic " + std::to_string(ana) + " vs fd " + std::to_string(num);
    }
    e.second = std::max(e.second, std::abs(num));
  }
  for (const auto& [kind, e] : err) {
    const double rel = e.second > 0 ? e.first / e.second : e.first;
    res.err_by_kind[kind_name(kind)] = rel;
    EXPECT_LE(rel, opt.tol) << kind_name(kind) << " gradients disagree with finite differences; worst "
                            << worst[kind];
  }
  EXPECT_LE(res.skipped, int(opt.max_skip_fraction * double(coords.size())))
      << res.skipped << " of " << coords.size() << " coordinates crossed a routing or clamp kink within ±h";
  EXPECT_GT(res.checked, 0);
  return res;
}

}  // namespace wattmoe::test
