// DegradationLadder: the levels it builds, mask order, the dwell rules for going down and up, the climb
// prediction that keeps it from cycling between two levels, bad configs; then in closed loop: an infeasible
// budget takes it down and a raised one brings it back to knob control.
#include "control/ladder.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "control_test_util.h"

namespace wattmoe {
namespace {

using control_test::controller_for;
using control_test::error_of;
using control_test::ranked_costs;
using control_test::mixtral_plant;
using control_test::response;
using control_test::run_loop;

LadderConfig small_ladder() {
  LadderConfig c;
  c.dwell = 3;
  c.dwell_up = 2;
  c.layer_costs = ranked_costs({{1, 5, 3, 5}, {2, 2, 9, 0}});  // ties toward the lower index
  c.max_masked = 2;
  return c;
}

// Feeds a ladder one step at a time: u and the measurement, above target beyond a 2% deadband; `in` keeps the target
// and the thermal flag between steps.
struct Stepper {
  explicit Stepper(DegradationLadder& ladder) : l(ladder) { in.target = 100; }
  int operator()(double u, double y) {
    in.step++;
    in.u = u;
    in.measured = y;
    in.above_target = y > in.target * 1.02;
    return l.update(in);
  }
  DegradationLadder& l;
  LadderInput in;
};

TEST(Ladder, BuildsLevelsAndMasksMostExpensiveFirst) {
  DegradationLadder l(small_ladder(), 4);
  // 0: knobs, 1: top-1, 2-3: one and two masked, 4-5: batch ½ and ¼ with two masked.
  ASSERT_EQ(l.num_levels(), 6);
  const int rungs[6] = {0, 1, 2, 2, 3, 3};
  const int masked[6] = {0, 0, 1, 2, 2, 2};
  const double scale[6] = {1, 1, 1, 1, 0.5, 0.25};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(l.levels()[size_t(i)].rung, rungs[i]);
    EXPECT_EQ(l.levels()[size_t(i)].masked, masked[i]);
    EXPECT_EQ(l.levels()[size_t(i)].batch_scale, scale[i]);
  }
  EXPECT_EQ(l.mask_order()[0], (std::vector<int>{1, 3, 2, 0}));
  EXPECT_EQ(l.mask_order()[1], (std::vector<int>{2, 0, 1, 3}));
  EXPECT_TRUE(l.masks().empty());

  LadderConfig off;
  off.enabled = false;
  EXPECT_EQ(DegradationLadder(off, 8).num_levels(), 1);
  LadderConfig no_costs;  // no cost vectors: no rung 2
  EXPECT_EQ(DegradationLadder(no_costs, 8).num_levels(), 4);
  LadderConfig deep = small_ladder();
  deep.max_masked = 3;  // E − 1: the most allowed, never all
  EXPECT_EQ(DegradationLadder(deep, 4).levels()[4].masked, 3);
}

TEST(Ladder, GoesDownAfterDwellStepsSaturatedAboveTarget) {
  DegradationLadder l(small_ladder(), 4);
  Stepper step(l);
  // Saturated but within target: never moves.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(1.0, 101), 0);
  // Above target but not saturated: never moves.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(0.99, 150), 0);
  // Saturated and above: exactly after `dwell` steps, one level.
  EXPECT_EQ(step(1.0, 150), 0);
  EXPECT_EQ(step(1.0, 150), 0);
  EXPECT_EQ(step(1.0, 150), +1);
  EXPECT_EQ(l.level(), 1);
  ASSERT_EQ(l.events().size(), 1u);
  EXPECT_EQ(l.events()[0].to_rung, 1);
  EXPECT_NE(l.events()[0].reason.find("above target"), std::string::npos);
  for (int i = 0; i < 3; ++i) step(1.0, 140);
  EXPECT_EQ(l.level(), 2);
  auto m = l.masks();
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(m[1], (std::vector<bool>{false, false, true, false}));
  // To the bottom, and no further.
  for (int i = 0; i < 30; ++i) step(1.0, 130);
  EXPECT_EQ(l.level(), l.num_levels() - 1);
  EXPECT_EQ(l.current().batch_scale, 0.25);
  for (const auto& m2 : l.masks()) EXPECT_LT(std::count(m2.begin(), m2.end(), true), 4);  // never all
}

TEST(Ladder, ADescentUnderWayGoesOnAfterDwellNextSteps) {
  LadderConfig c = small_ladder();  // dwell 3
  c.dwell_next = 1;
  DegradationLadder l(c, 4);
  Stepper step(l);
  LadderInput& in = step.in;
  // The first move waits the full dwell; each level reached and still seen above target is left after one step.
  EXPECT_EQ(step(1.0, 150), 0);
  EXPECT_EQ(step(1.0, 150), 0);
  EXPECT_EQ(step(1.0, 150), +1);
  EXPECT_EQ(step(1.0, 140), +1);
  EXPECT_EQ(l.level(), 2);
  EXPECT_NE(l.events().back().reason.find("u at 1 for 1 steps"), std::string::npos);
  // One step within target ends the descent: going further down waits the full dwell again.
  EXPECT_EQ(step(1.0, 101), 0);
  EXPECT_EQ(step(1.0, 140), 0);
  EXPECT_EQ(step(1.0, 140), 0);
  EXPECT_EQ(step(1.0, 140), +1);
  EXPECT_EQ(l.level(), 3);
  // A thermal cause (measured within target) keeps the full dwell even right after a move down.
  in.thermal_critical = true;
  EXPECT_EQ(step(1.0, 90), 0);
  EXPECT_EQ(step(1.0, 90), 0);
  EXPECT_EQ(step(1.0, 90), +1);
  EXPECT_EQ(step(1.0, 90), 0);
  in.thermal_critical = false;
  // dwell_next larger than dwell: dwell is used.
  LadderConfig slow = small_ladder();
  slow.dwell_next = 50;
  DegradationLadder l2(slow, 4);
  for (int i = 0; i < 6; ++i) l2.update({int64_t(i + 1), 1.0, 150, 100, true, false, "W"});
  EXPECT_EQ(l2.level(), 2);
}

TEST(Ladder, RanksExpertsByTheirPerTokenCostAtTheStepsTokens) {
  // Expert 0 costs a = 8 per step and nothing per pair, expert 1 costs b = 3 per pair: alone in a step (n = 1) expert
  // 0 is dearer (8 vs 3), at n = 4 tokens per step expert 1 is (2 vs 3).
  LadderConfig c;
  c.layer_costs = {ExpertCosts{{8, 0}, {0, 3}}};
  c.max_masked = 1;
  EXPECT_EQ(DegradationLadder(c, 2).mask_order()[0], (std::vector<int>{0, 1}));
  c.tokens_per_step = 4;
  EXPECT_EQ(DegradationLadder(c, 2).mask_order()[0], (std::vector<int>{1, 0}));
}

TEST(Ladder, ClimbsOnlyWhenTheLevelAboveIsPredictedToFit) {
  LadderConfig c = small_ladder();
  c.dwell_next = c.dwell;
  c.batch_scales.clear();
  DegradationLadder l(c, 4);  // 0, 1, one masked, two masked: levels u does not act on below 0
  Stepper step(l);
  LadderInput& in = step.in;
  // Level 0 at u = 1 draws 130; down to level 1 (still 130: top-1 = the knob's end here), then to one masked
  // (70).
  for (int i = 0; i < 3; ++i) step(1.0, 130);
  ASSERT_EQ(l.level(), 1);
  for (int i = 0; i < 3; ++i) step(1.0, 130);
  ASSERT_EQ(l.level(), 2);
  // Headroom at level 2 (70 < 100) and u low — but level 1 is predicted at 70 × 130/70 = 130 > 100: stay.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(step(0.0, 70), 0);
  EXPECT_EQ(l.level(), 2);
  // The target rises to 140: 130 fits. u has been low for longer than dwell_up already: it climbs at once,
  // one level only.
  in.target = 140;
  EXPECT_EQ(step(0.0, 70), -1);
  EXPECT_EQ(l.level(), 1);
  EXPECT_NE(l.events().back().reason.find("predicts 130"), std::string::npos);
  // At level 1 the next climb needs dwell_up fresh steps with u low (the caller reset u to 1 on the climb).
  EXPECT_EQ(step(1.0, 130), 0);
  EXPECT_EQ(step(0.1, 130), 0);
  EXPECT_EQ(step(0.1, 130), -1);  // level 0 at u = 1 measured 130: fits 140
  EXPECT_EQ(l.level(), 0);
  // Back down to level 1 to check that thermal-critical reports block climbing.
  for (int i = 0; i < 3; ++i) step(1.0, 150);
  ASSERT_EQ(l.level(), 1);
  in.thermal_critical = true;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(0.0, 100), 0);
  in.thermal_critical = false;
  EXPECT_EQ(step(0.0, 100), 0);  // level 0 at u = 1 drew 150 > 140
  in.target = 160;
  EXPECT_EQ(step(0.0, 100), -1);
}

// An expert tier (fp8) adds a second knob-control level right after rung 0; it and every level below run the
// experts at the tier, the levels above it do not; u acts there as on rung 0, and the climb back to the
// full-precision level is predicted from what each level measured at u = 1.
TEST(Ladder, AnExpertTierIsAKnobLevelAfterRung0ThatEveryLevelBelowKeeps) {
  LadderConfig c = small_ladder();
  c.expert_tier = "fp8";
  DegradationLadder l(c, 4);
  // 0: knobs, 1: knobs at fp8, 2: top-1, 3-4: one and two masked, 5-6: batch ½ and ¼.
  ASSERT_EQ(l.num_levels(), 7);
  const int rungs[7] = {0, 0, 1, 2, 2, 3, 3};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(l.levels()[size_t(i)].rung, rungs[i]) << i;
    EXPECT_EQ(l.levels()[size_t(i)].expert_tier, i == 0 ? "" : "fp8") << i;
  }
  EXPECT_TRUE(l.levels()[1].effort_acts());
  Stepper step(l);
  LadderInput& in = step.in;
  for (int i = 0; i < 3; ++i) step(1.0, 120);  // knob control at its cheapest end draws 120 > 100: down
  ASSERT_EQ(l.level(), 1);
  EXPECT_NE(l.events().back().reason.find("rung 0 (knob control, fp8 experts)"), std::string::npos);
  step(1.0, 95);  // fp8 at u = 1 fits; headroom lets u fall
  // u low, but level 0 is predicted at 95 × 120/95 = 120 > 100: stay at the tier.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(0.2, 90), 0);
  EXPECT_EQ(l.level(), 1);
  in.target = 130;  // now it fits: back to full precision
  EXPECT_EQ(step(0.2, 90), -1);
  EXPECT_EQ(l.level(), 0);
  EXPECT_EQ(l.current().expert_tier, "");
}

// On a batch level u moves the share between the level above's (u = 0) and its own (u = 1); the ladder climbs
// from there only with u at 0, where the level above's cheapest end is the same state: the measurement is the
// prediction.
TEST(Ladder, OnABatchLevelUMovesTheShareAndTheClimbNeedsUAtZero) {
  LadderConfig c = small_ladder();
  c.layer_costs.clear();
  DegradationLadder l(c, 4);  // 0, 1, batch 1 → ½, batch ½ → ¼
  ASSERT_EQ(l.num_levels(), 4);
  EXPECT_EQ(l.levels()[2].share(0.0), 1.0);
  EXPECT_EQ(l.levels()[2].share(0.5), 0.75);
  EXPECT_EQ(l.levels()[2].share(1.0), 0.5);
  EXPECT_EQ(l.levels()[3].share(0.0), 0.5);
  EXPECT_EQ(l.levels()[3].share(1.0), 0.25);
  EXPECT_EQ(l.levels()[1].share(0.3), 1.0);  // u does not act on top-1
  EXPECT_TRUE(l.levels()[0].effort_acts() && l.levels()[2].effort_acts() && !l.levels()[1].effort_acts());
  Stepper step(l);
  for (int i = 0; i < 5; ++i) step(1.0, 130);  // dwell 3 to top-1, dwell_next 2 to the first batch level
  ASSERT_EQ(l.level(), 2);
  EXPECT_NE(l.events().back().reason.find("batch x1 to x0.5 by effort"), std::string::npos);
  // u low but not 0: the share is below the level above's, so no climb however long.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(0.1, 90), 0);
  // u at 0 for dwell_up steps and below target by the climb margin: up, predicted at the measurement.
  EXPECT_EQ(step(0.0, 95), 0);
  EXPECT_EQ(step(0.0, 95), -1);
  EXPECT_EQ(l.level(), 1);
  EXPECT_NE(l.events().back().reason.find("u at 0 for 2 steps and 95 W now predicts 95 W"), std::string::npos);
  // At u 0 but within the climb margin (99 > 98): stays.
  for (int i = 0; i < 3; ++i) step(1.0, 130);
  ASSERT_EQ(l.level(), 2);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(step(0.0, 99), 0);
}

TEST(Ladder, BadConfigIsAClearError) {
  auto bad = [](auto edit, int E = 4) {
    LadderConfig c = small_ladder();
    edit(c);
    return error_of([&] { DegradationLadder l(c, E); });
  };
  EXPECT_NE(bad([](LadderConfig& c) { c.dwell = 0; }).find("dwell"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.dwell_up = -2; }).find("dwell_up"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.dwell_next = 0; }).find("dwell_next"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.u_up = 1; }).find("u_up"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.u_up = kNaN; }).find("u_up"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.climb_margin = 0.7; }).find("climb_margin"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.max_masked = 4; }).find("never all"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.layer_costs[1].fixed.pop_back(); }).find("layer_costs[1].fixed"),
            std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.layer_costs[0].fixed[2] = -1; }).find("layer_costs[0].fixed[2]"),
            std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.layer_costs[0].per_token[2] = kNaN; }).find("finite"),
            std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.tokens_per_step = 0; }).find("tokens_per_step"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) {
              c.batch_scales = {0.5, 0.5};
            }).find("strictly decreasing"),
            std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) { c.batch_scales = {1.0}; }).find("batch_scales[0]"), std::string::npos);
  EXPECT_NE(bad([](LadderConfig& c) {}, 0).find("num_experts"), std::string::npos);
}

// Per-layer costs for the Mixtral-shaped plant (any ranking will do; the plant's experts are all the same
// size).
std::vector<std::vector<double>> plant_costs(int layers, int E) {
  std::vector<std::vector<double>> c(static_cast<size_t>(layers),
                                     std::vector<double>(static_cast<size_t>(E)));
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < E; ++e) c[size_t(l)][size_t(e)] = 1.0 + 0.1 * double((e * 5 + l * 3) % E);
  return c;
}

TEST(Ladder, ClosedLoopDescendsWhenInfeasibleAndClimbsBackWhenTheTargetRises) {
  // 250 W is below what knob control reaches (~303 W at u = 1): the ladder must go down; then 420 W is within
  // knob range again: it must climb all the way back and hold the budget at rung 0.
  ClosedLoopPlant plant(mixtral_plant());
  ControllerConfig cc = controller_for(plant.config(), "cost", 250);
  cc.ladder.layer_costs = ranked_costs(plant_costs(plant.config().layers, plant.config().num_experts));
  Controller ctl(cc);
  const int steps = 400, raise_at = 150;
  auto t = run_loop(ctl, plant, steps, [&](int i) {
    if (i == raise_at) ctl.set_target(420);
  });
  int deepest = 0, last_descent = 0;
  for (int i = 0; i < raise_at; ++i) {
    deepest = std::max(deepest, t.rung[size_t(i)]);
    if (i > 0 && t.level[size_t(i)] > t.level[size_t(i - 1)]) last_descent = i;
  }
  std::printf(
      "ladder: deepest rung %d before the raise (last move at step %d), power at step %d: %.1f W "
      "(target 250)\n",
      deepest, last_descent, raise_at - 1, t.measured[size_t(raise_at - 1)]);
  for (const auto& e : ctl.ladder().events())
    std::printf("  step %lld: level %d -> %d: %s\n", (long long)e.step, e.from_level, e.to_level,
                e.reason.c_str());
  EXPECT_EQ(deepest, 3);
  EXPECT_LE(t.measured[size_t(raise_at - 1)], 250 * 1.02);  // the budget holds at the bottom rung
  // Levels go down one at a time and never up while the target is infeasible at rung 0.
  for (int i = 1; i < raise_at; ++i) EXPECT_GE(t.level[size_t(i)], t.level[size_t(i - 1)]);
  // Back at rung 0 after the raise and holding 420 W.
  EXPECT_EQ(t.rung.back(), 0);
  int back = -1;
  for (int i = raise_at; i < steps; ++i)
    if (t.level[size_t(i)] == 0) {
      back = i;
      break;
    }
  ASSERT_GE(back, 0);
  for (int i = back; i < steps; ++i) EXPECT_EQ(t.level[size_t(i)], 0);  // and stays there
  const auto r = response(t.measured, t.u, back, steps, 420, true, 40);
  std::printf(
      "ladder: back at rung 0 %d steps after the raise; then settled in %d steps, steady error %.2f%%\n",
      back - raise_at, r.settle, 100 * r.steady_error);
  EXPECT_LE(r.steady_error, 0.05);
  // Every move is logged with a reason.
  for (const auto& e : ctl.ladder().events()) EXPECT_FALSE(e.reason.empty());
}

}  // namespace
}  // namespace wattmoe
