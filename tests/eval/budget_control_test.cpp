// The budget flags' checks and their way into the controller (eval/budget_control.h): bad values fail with the
// flag's name; the deadband, ladder dwell and target reach the controller unchanged, the default deadband is the
// loop's own.
#include <gtest/gtest.h>

#include <cmath>

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
  EXPECT_EQ(budget_controller_config(b, "sim", m, RoutingSetup{}).budget.deadband, BudgetConfig{}.deadband);
  b.control_deadband = 0.005;
  b.ladder_dwell = 4;
  const ControllerConfig c = budget_controller_config(b, "model", m, RoutingSetup{});
  EXPECT_EQ(c.budget.deadband, 0.005);
  EXPECT_EQ(c.ladder.dwell, 4);
  EXPECT_EQ(c.budget.target, 136.5);
  EXPECT_EQ(c.budget.measure, Measure::Power);
}

}  // namespace
}  // namespace wattmoe::test
