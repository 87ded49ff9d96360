// Controller: the decision's fields, the thermal floor reaching u, per-layer masks, determinism, bad inputs
// and bad configurations.
#include "control/controller.h"

#include <gtest/gtest.h>

#include <limits>

#include "control_test_util.h"

namespace wattmoe {
namespace {

using control_test::controller_for;
using control_test::error_of;
using control_test::ranked_costs;
using control_test::mixtral_plant;

ControllerConfig basic(const std::string& policy = "cost", double target = 400) {
  return controller_for(mixtral_plant(), policy, target);
}

ControlInput power_in(int64_t step, double w) {
  ControlInput in;
  in.step = step;
  in.dt_s = 0.25;
  in.power_w = w;
  return in;
}

TEST(Controller, InitialDecisionIsFullQuality) {
  for (const std::string& policy : controllable_policies()) {
    Controller ctl(basic(policy));
    const ControlDecision d = ctl.initial();
    EXPECT_EQ(d.policy, policy);
    EXPECT_EQ(d.u, 0.0);
    EXPECT_EQ(d.rung, 0);
    EXPECT_EQ(d.batch_scale, 1.0);
    EXPECT_TRUE(d.layer_masks.empty());
    validate_knobs(d.knobs, 8, 2);
  }
}

TEST(Controller, DecisionCarriesTheStateAndAReason) {
  Controller ctl(basic("top_p"));
  const ControlDecision d = ctl.update(power_in(1, 480));
  EXPECT_EQ(d.step, 1);
  EXPECT_GT(d.u, 0.0);
  EXPECT_LT(d.knobs.p, 1.f);
  EXPECT_EQ(d.knobs.k_min, 1);
  EXPECT_DOUBLE_EQ(d.measured, 480);
  EXPECT_DOUBLE_EQ(d.error, 0.2);
  EXPECT_FALSE(d.thermal_active);
  EXPECT_NE(d.reason.find("power 480 W vs target 400"), std::string::npos) << d.reason;
}

TEST(Controller, ThermalFloorLiftsTheEffort) {
  Controller ctl(basic("cost", 1000));  // no power pressure at all
  ControlInput in = power_in(1, 300);
  Sample s;
  s.time_s = 10;
  s.thermal_margin_c = 2.0;
  in.sample = s;
  const ControlDecision d = ctl.update(in);
  EXPECT_TRUE(d.thermal_active);
  EXPECT_GT(d.thermal_floor, 0.5);
  EXPECT_EQ(d.u, d.thermal_floor);
  EXPECT_GT(d.knobs.lambda, 0.f);
  EXPECT_NE(d.reason.find("thermal floor"), std::string::npos) << d.reason;
  // Disabled guard: the same sample does nothing.
  ControllerConfig off = basic("cost", 1000);
  off.thermal.enabled = false;
  Controller cold(off);
  EXPECT_EQ(cold.update(in).u, 0.0);
}

TEST(Controller, MasksReachEveryLayer) {
  ControllerConfig c = basic("cost", 100);  // far below reach: the ladder goes down
  c.ladder.dwell = 1;
  c.ladder.layer_costs = ranked_costs({{1, 2, 3, 4, 5, 6, 7, 8}, {8, 7, 6, 5, 4, 3, 2, 1}});
  Controller ctl(c);
  ControlDecision d;
  for (int i = 1; i <= 6 && d.rung < 2; ++i) d = ctl.update(power_in(i, 300));
  ASSERT_EQ(d.rung, 2);
  EXPECT_EQ(d.policy, "mask");
  EXPECT_EQ(d.knobs.k_max, 1);
  ASSERT_EQ(d.layer_masks.size(), 2u);
  EXPECT_TRUE(d.layer_masks[0][7]);
  EXPECT_TRUE(d.layer_masks[1][0]);
  const PolicyKnobs k1 = d.knobs_for_layer(1);
  EXPECT_EQ(k1.mask, d.layer_masks[1]);
  validate_knobs(k1, 8, 2);
  EXPECT_NE(error_of([&] { d.knobs_for_layer(2); }).find("layer 2 has no expert mask"), std::string::npos);
  EXPECT_NE(d.reason.find("ladder down"), std::string::npos) << d.reason;
}

TEST(Controller, DeterministicRunTwiceBitwiseEqual) {
  auto run = [] {
    ClosedLoopPlantConfig pc = mixtral_plant();
    pc.noise = 0.02;
    pc.gpu.ambient_c = 55;
    ClosedLoopPlant plant(pc);
    ControllerConfig cc = controller_for(pc, "topk", 380);
    cc.ladder.layer_costs = ranked_costs(std::vector<std::vector<double>>(32, {1, 2, 3, 4, 5, 6, 7, 8}));
    Controller ctl(cc);
    std::vector<ControlDecision> out;
    run_closed_loop(ctl, plant, 200, [&](int i, const ClosedLoopStep&, const ControlDecision& d) {
      if (i == 100) ctl.set_target(250);
      out.push_back(d);
    });
    return out;
  };
  const auto a = run(), b = run();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].u, b[i].u);
    EXPECT_EQ(a[i].floor, b[i].floor);
    EXPECT_EQ(a[i].level, b[i].level);
    EXPECT_EQ(a[i].knobs.k_max, b[i].knobs.k_max);
    EXPECT_EQ(a[i].reason, b[i].reason);
  }
}

TEST(Controller, BadInputsAreClearErrors) {
  Controller ctl(basic());
  EXPECT_NE(error_of([&] { ctl.update(power_in(1, std::nan(""))); }).find("power_w = nan"),
            std::string::npos);
  ControlInput dt0 = power_in(1, 400);
  dt0.dt_s = 0;
  EXPECT_NE(error_of([&] { ctl.update(dt0); }).find("dt_s"), std::string::npos);
  ctl.update(power_in(5, 400));
  EXPECT_NE(error_of([&] { ctl.update(power_in(5, 400)); }).find("strictly increasing"), std::string::npos);
  EXPECT_NE(error_of([&] { ctl.set_target(-1); }).find("target"), std::string::npos);

  ControllerConfig jc = basic("cost", 0.02);
  jc.budget.measure = Measure::JoulesPerToken;
  Controller jt(jc);
  EXPECT_NE(error_of([&] { jt.update(power_in(1, 400)); }).find("joules_per_token"), std::string::npos);
}

TEST(Controller, BadConfigurationsNameTheirPart) {
  auto bad = [](auto edit) {
    ControllerConfig c = basic();
    edit(c);
    return error_of([&] { Controller ctl(c); });
  };
  EXPECT_NE(bad([](ControllerConfig& c) { c.budget.target = -400; }).find("controller budget: target"),
            std::string::npos);
  EXPECT_NE(bad([](ControllerConfig& c) { c.knobs.model_k = 9; }).find("controller knobs: model_k"),
            std::string::npos);
  EXPECT_NE(bad([](ControllerConfig& c) { c.knobs.p_min = 2; }).find("p_min"), std::string::npos);
  EXPECT_NE(bad([](ControllerConfig& c) { c.thermal.lookahead_s = -1; }).find("controller thermal guard"),
            std::string::npos);
  EXPECT_NE(bad([](ControllerConfig& c) {
              c.ladder.layer_costs = ranked_costs({{1, 2, 3}});
            }).find("controller ladder"),
            std::string::npos);
}

}  // namespace
}  // namespace wattmoe
