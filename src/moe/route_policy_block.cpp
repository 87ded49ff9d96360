#include "moe/route_policy_block.h"

#include "ops/moe_route_policy_check.h"

namespace wattmoe {

MoeRoutePolicy route_policy_block(const std::string& policy, const PolicyKnobs& kn, const ExpertCosts& costs, int E) {
  MoeRoutePolicy p{};
  p.policy = parse_moe_route(policy);
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

std::vector<MoeRoutePolicy> route_policy_blocks(const RoutingSpec& s, int num_layers, int E) {
  static const ExpertCosts none;
  std::vector<MoeRoutePolicy> out;
  for (int l = 0; l < num_layers; ++l) {
    const ExpertCosts& c = s.costs.empty() ? none : s.costs.size() == 1 ? s.costs[0] : s.costs.at(size_t(l));
    out.push_back(route_policy_block(s.policy, s.knobs_for(l), c, E));
  }
  return out;
}

}  // namespace wattmoe
