// The routing of a RoutingSpec (moe/routing_spec.h) as the fused MoE kernels read it: one policy block
// (ops/moe_route_policy.h, plain data for device memory) per model layer — the policy id, that layer's knobs, mask and
// expert costs. The kernels implement the CPU policies (moe/policy.h) on these blocks; this is the one conversion.
#pragma once
#include <string>
#include <vector>

#include "moe/policy.h"
#include "moe/routing_spec.h"
#include "ops/moe_route_policy.h"

namespace wattmoe {

// Throws wattmoe::Error for an unknown policy name, a mask of the wrong length, or costs of the wrong length or with
// a negative or non-finite entry. Knob values are copied as they are (validate_route_policy judges them); costs may
// be empty (policies that do not price experts).
MoeRoutePolicy route_policy_block(const std::string& policy, const PolicyKnobs& knobs, const ExpertCosts& costs,
                                  int E);

// One block per model layer (dense layers get the spec's knobs too: they are never read).
std::vector<MoeRoutePolicy> route_policy_blocks(const RoutingSpec& s, int num_layers, int E);

}  // namespace wattmoe
