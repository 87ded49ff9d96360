// The routed experts' precision tier in the energy models (issue 16 item 2, uniform tiers): --expert-precision fp8 or
// int8 halves the weight bytes the simulated GPU charges for each expert a step activates (plant/plant.h
// set_plant_expert_shape) and the analytic routing costs' fixed part a_e (eval/routing_setup.h make_routing), while
// the dense part (attention, router) stays bf16; a bad tier name is refused naming the flag.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "energy/sim_gpu.h"
#include "eval/routing_setup.h"
#include "plant/sim_plant.h"

namespace wattmoe {
namespace {

// Simulated joules of one step's work (idle excluded) for this expert tier.
double step_joules(double expert_weight_bytes, const std::vector<std::vector<int64_t>>& counts) {
  PlantShape s;
  set_plant_expert_shape(s, "1024x2048", 8, expert_weight_bytes);
  SimulatedGpu gpu;
  const double e0 = gpu.true_energy_j();
  const double busy = run_step_work(gpu, s, counts, 8, 1.0);
  return gpu.true_energy_j() - e0 - SimGpuParams{}.idle_w * busy;
}

TEST(ExpertTierCost, Fp8ExpertsCostLessAndTheDensePartStays) {
  const std::vector<std::vector<int64_t>> decode = {{1, 0, 1, 0, 0, 0, 0, 0}, {0, 2, 0, 0, 0, 0, 0, 0}};
  const double bf16 = step_joules(2, decode), fp8 = step_joules(1, decode);
  EXPECT_LT(fp8, 0.8 * bf16) << "a decode step reads mostly expert weights";
  const std::vector<std::vector<int64_t>> none = {{0, 0, 0, 0, 0, 0, 0, 0}, {}};
  EXPECT_DOUBLE_EQ(step_joules(1, none), step_joules(2, none)) << "no expert ran: only the bf16 dense part";
}

// The ladder's tier level switches the tier at run time (Plant::set_expert_weight_bytes): a simulated plant made
// bf16 and switched to fp8 charges a step exactly what a plant made fp8 does, and switching back restores bf16's.
TEST(ExpertTierCost, ASwitchAtRunTimePricesAsAPlantMadeAtThatTier) {
  const std::vector<std::vector<int64_t>> decode = {{1, 0, 1, 0, 0, 0, 0, 0}, {0, 2, 0, 0, 0, 0, 0, 0}};
  const auto joules = [&](double made, double switched_to) {
    PlantShape s;
    set_plant_expert_shape(s, "1024x2048", 8, made);
    s.streams = 1;
    SimulatedPlant p(SimGpuParams{}, s);
    if (switched_to > 0) p.set_expert_weight_bytes(switched_to);
    return p.step(decode, 8, 1.0).joules;
  };
  EXPECT_DOUBLE_EQ(joules(2, 1), joules(1, 0));
  EXPECT_DOUBLE_EQ(joules(1, 2), joules(2, 0));
  EXPECT_LT(joules(2, 1), joules(2, 0));
}

TEST(ExpertTierCost, AnalyticRoutingCostsFollowTheTier) {
  ModelConfig c;
  c.hidden_size = 64, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
  c.num_experts = 4, c.top_k = 2, c.intermediate_size = c.moe_intermediate_size = 128;
  RoutingOptions a;
  a.policy = "cost";
  const RoutingSetup bf16 = make_routing(a, c, 16), fp8 = make_routing(a, c, 16, "fp8"),
                     int8 = make_routing(a, c, 16, "int8");
  for (size_t l = 0; l < bf16.layer_costs.size(); ++l)
    for (size_t e = 0; e < bf16.layer_costs[l].fixed.size(); ++e) {
      EXPECT_LT(fp8.layer_costs[l].fixed[e], bf16.layer_costs[l].fixed[e]) << "layer " << l << " expert " << e;
      EXPECT_EQ(int8.layer_costs[l].fixed[e], fp8.layer_costs[l].fixed[e]);
      EXPECT_EQ(fp8.layer_costs[l].per_token[e], bf16.layer_costs[l].per_token[e]) << "activations stay bf16";
    }
  EXPECT_NE(test::error_of([&] { make_routing(a, c, 16, "fp4"); }).find("--expert-precision"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
