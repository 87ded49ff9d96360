// Test helper: the CPU policies' knobs and costs (moe/policy.h) as the fused MoE layer's policy block
// (ops/moe_route_policy.h). ops/ does not know moe/, so the conversion lives with the tests (the model side keeps
// its own next to its PolicyKnobs).
#pragma once
#include <string>

#include "moe/policy.h"
#include "ops/moe_route_policy.h"
#include "ops/moe_route_policy_check.h"

namespace wattmoe::test {

// Throws wattmoe::Error for an unknown name, a mask of the wrong length, or costs of the wrong length or with a
// negative or non-finite entry. Knob values are copied as they are (validate_route_policy judges them).
inline MoeRoutePolicy to_route_policy(const std::string& name, const PolicyKnobs& kn, const ExpertCosts& costs,
                                      int E) {
  MoeRoutePolicy p{};
  p.policy = parse_moe_route(name);
  p.k_max = kn.k_max;
  p.k_min = kn.k_min;
  p.reuse_min_tokens = kn.reuse_min_tokens;
  p.lambda = kn.lambda;
  p.p = kn.p;
  p.beta = kn.beta;
  p.budget_j = kn.budget_j;
  set_route_mask(p, kn.mask, E);
  set_route_costs(p, costs.fixed, costs.per_token, E);
  return p;
}

}  // namespace wattmoe::test
