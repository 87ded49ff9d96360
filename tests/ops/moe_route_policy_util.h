// Test helper: the CPU policies' knobs and costs (moe/policy.h) as the fused MoE layer's policy block
// (ops/moe_route_policy.h).
#pragma once
#include <string>

#include "moe/route_policy_block.h"

namespace wattmoe::test {

// The library's conversion (moe/route_policy_block.h), under the tests' name.
inline MoeRoutePolicy to_route_policy(const std::string& name, const PolicyKnobs& kn, const ExpertCosts& costs,
                                      int E) {
  return route_policy_block(name, kn, costs, E);
}

}  // namespace wattmoe::test
