// The budget flags' checks and their way into the controller (eval/budget_control.h): bad values fail with the
// flag's name; the deadband, ladder dwell and target reach the controller unchanged, the default deadband is the
// loop's own.
#include <gtest/gtest.h>

#include <cmath>

#include "../adapt/adapt_test_util.h"
#include "core/error.h"
#include "eval/budget_control.h"

namespace wattmoe::test {
namespace {

void expect_rejected(const BudgetOptions& b, const std::string& flag) {
  try {
    check_budget_options(b);
    ADD_FAILURE() << "accepted a bad " << flag;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
  }
}

TEST(BudgetControl, BadOptionsNameTheirFlag) {
  BudgetOptions b;
  b.power_w = 140;
  check_budget_options(b);
  for (double d : {-0.01, 0.5, 2.0, std::nan("")}) {
    BudgetOptions bad = b;
    bad.control_deadband = d;
    expect_rejected(bad, "--control-deadband");
  }
  BudgetOptions dwell = b;
  dwell.ladder_dwell = 0;
  expect_rejected(dwell, "--ladder-dwell");
  BudgetOptions gains = b;
  gains.control_gains = "fast";
  expect_rejected(gains, "--control-gains");
  BudgetOptions both = b;
  both.energy_j_per_token = 0.01;
  expect_rejected(both, "exclusive");
}

TEST(BudgetControl, TheDeadbandAndDwellReachTheController) {
  ModelConfig m;
  m.num_experts = 8, m.top_k = 2;
  BudgetOptions b;
  b.power_w = 136.5;
  EXPECT_EQ(budget_controller_config(b, "sim", m, RoutingSetup{}, 128).budget.deadband, BudgetConfig{}.deadband);
  b.control_deadband = 0.005;
  b.ladder_dwell = 4;
  const ControllerConfig c = budget_controller_config(b, "model", m, RoutingSetup{}, 128);
  EXPECT_EQ(c.budget.deadband, 0.005);
  EXPECT_EQ(c.ladder.dwell, 4);
  EXPECT_EQ(c.budget.target, 136.5);
  EXPECT_EQ(c.budget.measure, Measure::Power);
}

// --control-policy budget: the knob runs from the MoE layers' mean top-k layer-step energy for a forward of
// forward_tokens tokens (estimate_budget_range; u = 0) down to a zero budget (u = 1: each token's top-k_min); it
// moves with the tokens, and a model whose experts cost nothing is refused with the flag's name.
TEST(BudgetControl, TheBudgetKnobGetsItsRangeFromTheCosts) {
  const TinyModel t = tiny_model();
  BudgetOptions b;
  b.power_w = 300, b.control_policy = "budget";
  RoutingOptions ro;
  ro.expert_shape = "4096x14336";
  const RoutingSetup r = make_routing(ro, t.config, 128);
  const ControllerConfig c = budget_controller_config(b, "sim", t.config, r, 128);
  double full = 0;
  int layers = 0;
  for (int l = 0; l < t.config.num_layers; ++l) {
    if (!t.config.is_moe_layer(l)) continue;
    full += estimate_budget_range(r.layer_costs[size_t(l)], 128, t.config.top_k).full_j, ++layers;
  }
  EXPECT_DOUBLE_EQ(c.knobs.budget_full_j, full / layers);
  EXPECT_GT(c.knobs.budget_full_j, 0);
  EXPECT_EQ(c.knobs.budget_floor_j, 0);
  EXPECT_GT(budget_controller_config(b, "sim", t.config, r, 256).knobs.budget_full_j, c.knobs.budget_full_j);
  RoutingSetup free = r;
  for (ExpertCosts& e : free.layer_costs) std::fill(e.fixed.begin(), e.fixed.end(), 0.f),
                                          std::fill(e.per_token.begin(), e.per_token.end(), 0.f);
  try {
    budget_controller_config(b, "sim", t.config, free, 128);
    ADD_FAILURE() << "a budget over experts that cost nothing was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--control-policy budget"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wattmoe::test
