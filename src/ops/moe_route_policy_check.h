// Host-side filling and validation of a MoeRoutePolicy block (ops/moe_route_policy.h), with wattmoe::Error messages
// that name the bad knob and its valid range (the CPU policies' wording, moe/policy.cpp). Header-only, so the CPU
// library, the CUDA library (MoeLayerCuda::set_route_policy) and the tests share one copy; it pulls in fmt through
// core/error.h, so code compiled by nvcc does not include it.
#pragma once
#include <algorithm>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/moe_route_policy.h"

namespace wattmoe {

// name -> policy; an unknown name throws an Error listing the valid ones.
inline MoeRoute parse_moe_route(const std::string& name) {
  MoeRoute r{};
  if (moe_route_from_name(name, r)) return r;
  std::string valid;
  for (int i = 0; i < kMoeRouteCount; ++i) valid += std::string(i ? ", " : "") + moe_route_name(MoeRoute(i));
  fail("unknown routing policy '{}': expected one of {}", name, valid);
}

// The policy's costs from one vector per kind, one entry per expert (E of them, 1..256), each finite and >= 0; two
// empty vectors clear the costs (cost_experts = 0: only for policies that do not price experts). Overwrites fixed,
// per_token and cost_experts; entries past E are zeroed.
inline void set_route_costs(MoeRoutePolicy& p, const std::vector<float>& fixed, const std::vector<float>& per_token,
                            int E) {
  WATTMOE_REQUIRE(E >= 1 && E <= kMoeRouteMaxExperts, "route policy costs: E = {} experts: expected 1..{}", E,
                  kMoeRouteMaxExperts);
  std::fill(std::begin(p.fixed), std::end(p.fixed), 0.f);
  std::fill(std::begin(p.per_token), std::end(p.per_token), 0.f);
  p.cost_experts = 0;
  if (fixed.empty() && per_token.empty()) return;
  auto copy = [E](const std::vector<float>& v, float* dst, const char* what, const char* unit) {
    WATTMOE_REQUIRE(int64_t(v.size()) == E, "expert costs: {} ({}) has {} entries: expected one per expert (E = {})",
                    what, unit, v.size(), E);
    for (size_t e = 0; e < v.size(); ++e) {
      WATTMOE_REQUIRE(std::isfinite(v[e]) && v[e] >= 0.f,
                      "expert costs: {}[{}] = {}: expected a finite number of joules >= 0 ({})", what, e, v[e], unit);
      dst[e] = v[e];
    }
  };
  copy(fixed, p.fixed, "fixed", "a_e, J per step if the expert is activated");
  copy(per_token, p.per_token, "per_token", "b_e, J per (token, expert) pair");
  p.cost_experts = E;
}

// pruned[e] = true prunes expert e; empty = none pruned (then every mask bit is cleared).
inline void set_route_mask(MoeRoutePolicy& p, const std::vector<bool>& pruned, int E) {
  WATTMOE_REQUIRE(pruned.empty() || int64_t(pruned.size()) == E,
                  "policy knob mask has {} entries: expected one per expert (E = {}) or none", pruned.size(), E);
  std::fill(std::begin(p.mask), std::end(p.mask), 0u);
  for (size_t e = 0; e < pruned.size(); ++e) moe_route_set_pruned(p, int(e), pruned[e]);
}

// K of a block: k_max, or model_k when k_max = 0.
inline int route_policy_k(const MoeRoutePolicy& p, int model_k) { return p.k_max > 0 ? p.k_max : model_k; }

// The scalar knobs' ranges (lambda, p, beta, k_max, k_min, budget_j, reuse_min_tokens), one copy for the CPU
// policies' PolicyKnobs (moe/policy.cpp validate_knobs) and this block (validate_route_policy): Error names the first
// bad knob. E experts, the model's k (1..E, checked by the callers).
template <class Knobs>
void validate_scalar_knobs(const Knobs& k, int E, int model_k) {
  WATTMOE_REQUIRE(std::isfinite(k.lambda) && k.lambda >= 0, "policy knob lambda = {}: expected a finite value >= 0",
                  k.lambda);
  WATTMOE_REQUIRE(k.p > 0 && k.p <= 1, "policy knob p = {}: expected 0 < p <= 1", k.p);
  WATTMOE_REQUIRE(k.beta >= 0 && k.beta <= 1, "policy knob beta = {}: expected 0 <= beta <= 1", k.beta);
  WATTMOE_REQUIRE(k.k_max >= 0 && k.k_max <= E,
                  "policy knob k_max = {}: expected 1 <= k_max <= E = {} (or 0 for the model's k = {})", k.k_max, E,
                  model_k);
  const int K = k.k_max > 0 ? int(k.k_max) : model_k;
  WATTMOE_REQUIRE(k.k_min >= 1, "policy knob k_min = {}: expected k_min >= 1", k.k_min);
  WATTMOE_REQUIRE(k.k_min <= K, "policy knob k_min = {} exceeds k_max = {}: expected 1 <= k_min <= k_max", k.k_min, K);
  WATTMOE_REQUIRE(!std::isnan(k.budget_j) && k.budget_j >= 0,
                  "policy knob budget_j = {}: expected joules >= 0 (inf for no budget)", k.budget_j);
  WATTMOE_REQUIRE(k.reuse_min_tokens >= 0, "policy knob reuse_min_tokens = {}: expected >= 0 (0 = off)",
                  k.reuse_min_tokens);
}

// Throws wattmoe::Error naming the first bad knob: E experts (1..256), the model's k (1..E), the layer's slot
// capacity `slots` (K must fit it). The scalar knobs as validate_scalar_knobs, the costs as moe/policy.cpp's
// validate_costs, plus what only the block has: the policy id, K <= slots, no mask bit past E - 1, cost_experts 0 or E (E for cost and budget,
// which price experts), and finite, non-negative costs.
inline void validate_route_policy(const MoeRoutePolicy& p, int E, int model_k, int slots) {
  WATTMOE_REQUIRE(E >= 1 && E <= kMoeRouteMaxExperts, "route policy: E = {} experts: expected 1..{}", E,
                  kMoeRouteMaxExperts);
  WATTMOE_REQUIRE(model_k >= 1 && model_k <= E, "route policy: model k = {}: expected 1 <= k <= E = {}", model_k, E);
  const int id = int(p.policy);
  WATTMOE_REQUIRE(id >= 0 && id < kMoeRouteCount,
                  "route policy: policy id {}: expected 0..{} (topk, cost, top_p, skip, budget, mask)", id,
                  kMoeRouteCount - 1);
  validate_scalar_knobs(p, E, model_k);
  const int K = route_policy_k(p, model_k);
  WATTMOE_REQUIRE(K <= slots,
                  "policy knob k_max = {} (K = {} slots per token) exceeds the layer's slot capacity {}: construct "
                  "MoeLayerCuda with MoeShape::max_slots >= {}",
                  p.k_max, K, slots, K);
  bool any_left = false;
  for (int e = 0; e < kMoeRouteMaxExperts; ++e) {
    if (e >= E)
      WATTMOE_REQUIRE(!moe_route_pruned(p, e), "policy knob mask prunes expert {}: expected experts 0..{} only", e,
                      E - 1);
    else
      any_left = any_left || !moe_route_pruned(p, e);
  }
  WATTMOE_REQUIRE(any_left, "policy knob mask prunes all {} experts: expected at least one expert left", E);
  const bool priced = p.policy == MoeRoute::Cost || p.policy == MoeRoute::Budget;
  WATTMOE_REQUIRE(p.cost_experts == 0 || p.cost_experts == E,
                  "expert costs: cost_experts = {}: expected one cost per expert (E = {}) or none (0)", p.cost_experts,
                  E);
  WATTMOE_REQUIRE(!priced || p.cost_experts == E,
                  "policy '{}' prices experts: expected expert costs for all E = {} experts (set_route_costs), "
                  "got {}",
                  moe_route_name(p.policy), E, p.cost_experts);
  for (int e = 0; e < p.cost_experts; ++e) {
    WATTMOE_REQUIRE(std::isfinite(p.fixed[e]) && p.fixed[e] >= 0.f,
                    "expert costs: fixed[{}] = {}: expected a finite number of joules >= 0 (a_e)", e, p.fixed[e]);
    WATTMOE_REQUIRE(std::isfinite(p.per_token[e]) && p.per_token[e] >= 0.f,
                    "expert costs: per_token[{}] = {}: expected a finite number of joules >= 0 (b_e)", e,
                    p.per_token[e]);
  }
}

}  // namespace wattmoe
