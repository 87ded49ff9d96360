// The Controller in closed loop with the simulated GPU (closed_loop_plant.h, Mixtral-shaped model, 0.25 s
// steps, rung 0 spans ~466 W at u = 0 to ~303 W at u = 1), default gains (kp 0.2, ki 1.0, deadband 2 %).
//
// What is asserted (numbers measured on this plant, see the test bodies):
//  - steady state within ±5 % of the target, measured and true power;
//  - after a step change of the target: overshoot ≤ 10 %, settled within ±5 % in at most kSettleSteps = 6
//  steps;
//  - no limit cycle: u moves less than 0.02 over the last 20 steps of each phase (0.05 with 1 % sensor
//  noise);
//  - discrete topk (OLMoE-shaped, k = 8..1): k stops moving (no period-2 chatter, no slow cycle) and power
//  stays
//    at or under the target + deadband;
//  - anti-windup: after 100 infeasible steps, the conditional-integration controller is back within ±5 % of a
//    feasible target in ≤ kSettleSteps steps; without anti-windup it takes more than 10× longer.
#include <gtest/gtest.h>

#include <cstdio>

#include "control_test_util.h"

namespace wattmoe {
namespace {

using control_test::controller_for;
using control_test::mixtral_plant;
using control_test::olmoe_plant;
using control_test::response;
using control_test::run_loop;

constexpr int kSettleSteps = 6;

// The plant's experts/token curve per policy: linear, concave and convex (the loop gain varies 3× along u).
ClosedLoopPlantConfig plant_for(const std::string& policy) {
  ClosedLoopPlantConfig p = mixtral_plant();
  if (policy == "top_p") p.effort_curve = {{0, 0}, {0.3, 0.6}, {1, 1}};
  if (policy == "skip") p.effort_curve = {{0, 0}, {0.6, 0.25}, {1, 1}};
  return p;
}

TEST(ControlLoop, PowerBudgetHeldThroughStepChanges) {
  for (const char* policy : {"cost", "top_p", "skip", "budget"}) {
    SCOPED_TRACE(policy);
    ClosedLoopPlant plant(plant_for(policy));
    Controller ctl(controller_for(plant.config(), policy, 420));
    const std::vector<std::pair<int, double>> phases = {{0, 420}, {60, 340}, {120, 440}, {180, 380}};
    const int steps = 240;
    auto t = run_loop(ctl, plant, steps, [&](int i) {
      for (const auto& [at, target] : phases)
        if (i == at && i > 0) ctl.set_target(target);
    });
    for (size_t p = 0; p < phases.size(); ++p) {
      const int from = phases[p].first, to = p + 1 < phases.size() ? phases[p + 1].first : steps;
      const double target = phases[p].second;
      const bool up = p == 0 || target > phases[p - 1].second;
      // The first step after a change still ran on the old decision: the response starts one step later.
      const auto r = response(t.measured, t.u, from + 1, to, target, up, 20);
      const auto rt = response(t.truth, t.u, from + 1, to, target, up, 20);
      std::printf(
          "[%s] phase %zu target %.0f W: overshoot %.2f%%, settle %d steps, steady error %.2f%% (true "
          "%.2f%%), "
          "u amplitude %.4f\n",
          policy, p, target, 100 * r.overshoot, r.settle, 100 * r.steady_error, 100 * rt.steady_error,
          r.u_amplitude);
      EXPECT_LE(r.steady_error, 0.05);
      EXPECT_LE(rt.steady_error, 0.05);
      EXPECT_LE(r.u_amplitude, 0.02);
      if (p > 0) {
        EXPECT_LE(r.overshoot, 0.10);
        EXPECT_LE(r.settle, kSettleSteps);
      }
    }
    EXPECT_EQ(ctl.ladder().level(), 0);
  }
}

TEST(ControlLoop, NoisySensorDoesNotMakeTheKnobWander) {
  ClosedLoopPlantConfig pc = mixtral_plant();
  pc.noise = 0.01;  // 1 % relative standard deviation, half the deadband
  ClosedLoopPlant plant(pc);
  Controller ctl(controller_for(pc, "cost", 400));
  const int steps = 160;
  auto t = run_loop(ctl, plant, steps);
  const auto r = response(t.truth, t.u, 1, steps, 400, false, 60);
  std::printf("noise 1%%: true steady error %.2f%%, u amplitude %.4f\n", 100 * r.steady_error, r.u_amplitude);
  EXPECT_LE(r.steady_error, 0.05);
  EXPECT_LE(r.u_amplitude, 0.05);
}

TEST(ControlLoop, EnergyPerTokenBudgetHeld) {
  ClosedLoopPlant plant(mixtral_plant());
  ControllerConfig cc = controller_for(plant.config(), "cost", 0.022);
  cc.budget.measure = Measure::JoulesPerToken;
  Controller ctl(cc);
  const int steps = 120;
  auto t = run_loop(ctl, plant, steps, [&](int i) {
    if (i == 60) ctl.set_target(0.026);
  });
  const auto r1 = response(t.measured, t.u, 1, 60, 0.022, false, 20);
  const auto r2 = response(t.measured, t.u, 61, steps, 0.026, true, 20);
  std::printf(
      "J/token: target 0.022 steady error %.2f%%; step to 0.026: overshoot %.2f%%, settle %d, steady "
      "%.2f%%\n",
      100 * r1.steady_error, 100 * r2.overshoot, r2.settle, 100 * r2.steady_error);
  EXPECT_LE(r1.steady_error, 0.05);
  EXPECT_LE(r2.steady_error, 0.05);
  EXPECT_LE(r2.overshoot, 0.10);
  EXPECT_LE(r2.settle, kSettleSteps);
}

TEST(ControlLoop, DiscreteTopkSettlesWithoutChatter) {
  ClosedLoopPlantConfig pc = olmoe_plant();
  // Power at each k, to place targets between levels.
  std::vector<double> level_w(size_t(pc.model_k + 1), 0);
  for (int k = 1; k <= pc.model_k; ++k) {
    ClosedLoopPlant probe(pc);
    ControlDecision d;
    d.policy = "topk";
    d.knobs.k_max = k;
    ClosedLoopStep s;
    for (int i = 0; i < 4; ++i) s = probe.step(d);
    level_w[size_t(k)] = s.power_w;
    std::printf("olmoe plant k=%d: %.1f W\n", k, s.power_w);
  }
  for (int k = 2; k <= pc.model_k; ++k) ASSERT_GT(level_w[size_t(k)], level_w[size_t(k - 1)]);

  ClosedLoopPlant plant(pc);
  // Targets a third of the way between two levels.
  const double t1 = level_w[5] + (level_w[6] - level_w[5]) / 3,
               t2 = level_w[3] + (level_w[4] - level_w[3]) / 3,
               t3 = level_w[7] + (level_w[8] - level_w[7]) / 3;
  Controller ctl(controller_for(pc, "topk", t1));
  const int steps = 300;
  auto t = run_loop(ctl, plant, steps, [&](int i) {
    if (i == 100) ctl.set_target(t2);
    if (i == 200) ctl.set_target(t3);
  });
  const int expect_k[3] = {5, 3, 7};  // the largest k that fits; the next level is > 2 % (the deadband) above
  const double targets[3] = {t1, t2, t3};
  for (int p = 0; p < 3; ++p) ASSERT_GT(level_w[size_t(expect_k[p] + 1)], targets[p] * 1.02);
  for (int p = 0; p < 3; ++p) {
    const int from = p * 100, to = from + 100;
    int changes = 0, flips = 0;
    for (int i = to - 60; i < to; ++i) {
      changes += t.k[size_t(i)] != t.k[size_t(i - 1)];
      flips += t.k[size_t(i)] == t.k[size_t(i - 2)] && t.k[size_t(i)] != t.k[size_t(i - 1)];
    }
    int total_changes = 0;
    for (int i = from + 1; i < to; ++i) total_changes += t.k[size_t(i)] != t.k[size_t(i - 1)];
    std::printf(
        "topk phase %d target %.1f W: final k %d, k changes in the phase %d, in its last 60 steps %d, "
        "power %.1f W (%+.2f%%)\n",
        p, targets[p], t.k[size_t(to - 1)], total_changes, changes, t.measured[size_t(to - 1)],
        100 * (t.measured[size_t(to - 1)] / targets[p] - 1));
    EXPECT_EQ(changes, 0);
    EXPECT_EQ(flips, 0);
    EXPECT_EQ(t.k[size_t(to - 1)], expect_k[p]);
    EXPECT_LE(t.measured[size_t(to - 1)], targets[p] * 1.02);
  }
}

TEST(ControlLoop, AntiWindupRecoversQuicklyAfterAnInfeasibleTarget) {
  // 100 steps asking for 200 W (the plant cannot go below ~303 W at rung 0; the ladder is off), then 420 W.
  int recovery[3] = {0, 0, 0};
  const AntiWindup modes[3] = {AntiWindup::Conditional, AntiWindup::BackCalculation, AntiWindup::None};
  for (int m = 0; m < 3; ++m) {
    ClosedLoopPlant plant(mixtral_plant());
    ControllerConfig cc = controller_for(plant.config(), "cost", 200);
    cc.ladder.enabled = false;
    cc.budget.anti_windup = modes[m];
    Controller ctl(cc);
    const int steps = 400;
    auto t = run_loop(ctl, plant, steps, [&](int i) {
      if (i == 100) ctl.set_target(420);
    });
    for (int i = 50; i < 100; ++i) EXPECT_EQ(t.u[size_t(i)], 1.0);  // saturated while infeasible
    recovery[m] = response(t.measured, t.u, 101, steps, 420, true, 20).settle;
    std::printf("anti-windup %s: back within 5%% of 420 W after %d steps\n", anti_windup_name(modes[m]),
                recovery[m]);
  }
  EXPECT_LE(recovery[0], kSettleSteps);
  EXPECT_LE(recovery[1], kSettleSteps);
  EXPECT_GT(recovery[2], 10 * recovery[0]);
}

}  // namespace
}  // namespace wattmoe
