// The routing-energy tally: one observer (tally_observer) prices each layer-step's routing, with the fixed costs
// scaled by the step share in that one place, whichever kernels routed it (runners call it after each forward).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "../test_util.h"
#include "moe/policy.h"
#include "moe/policy_select.h"

namespace wattmoe {
namespace {

Routing routing_of(std::vector<int32_t> expert, int64_t n, int k, int E) {
  Routing r;
  r.reset(n, k, E);
  r.expert = std::move(expert);
  r.recount();
  return r;
}

TEST(RoutingTally, ObserverScalesFixedCostsByTheStepShare) {
  const std::vector<ExpertCosts> costs = {{{1.f, 2.f, 4.f, 8.f}, {0.5f, 0.25f, 0.125f, 1.f}},
                                          {{3.f, 3.f, 3.f, 3.f}, {0.f, 0.f, 0.f, 0.f}}};
  auto tally = std::make_shared<RoutingEnergyTally>();
  const RoutingObserver observe = tally_observer(costs, 0.25, tally);
  const Routing r0 = routing_of({2, 0, 2, -1, 1, 2}, 3, 2, 4);  // experts 0, 1, 2 active; 5 pairs
  const Routing r1 = routing_of({3, -1}, 2, 1, 4);              // expert 3 active; 1 pair
  observe(0, r0);
  observe(1, r1);
  ASSERT_EQ(tally->joules.size(), 2u);
  EXPECT_DOUBLE_EQ(tally->joules[0], 0.25 * (1 + 2 + 4) + (0.5 + 0.25 + 3 * 0.125));
  EXPECT_DOUBLE_EQ(tally->joules[1], 0.25 * 3);
  EXPECT_EQ(tally->tokens[0], 3);
  EXPECT_EQ(tally->pairs[0], 5);
  EXPECT_EQ(tally->pairs[1], 1);
  // One cost row serves every layer.
  auto one = std::make_shared<RoutingEnergyTally>();
  tally_observer({costs[0]}, 1.0, one)(3, r0);
  EXPECT_DOUBLE_EQ(one->joules.at(3), routing_energy(r0, costs[0]));
  EXPECT_NE(test::error_of([&] { tally_observer({}, 1.0, one); }).find("needs costs"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
