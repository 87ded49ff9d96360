// BudgetController on a synthetic static plant with a one-step delay (y = y0 − g·u, as the tuning rule
// assumes): convergence, deadband, rate limit, floors, the three anti-windup modes, the gain rule, and bad
// values.
#include "control/budget_controller.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "control_test_util.h"

namespace wattmoe {
namespace {

using control_test::error_of;

// y = 500 − 200·u: γ = 200 / 400 = 0.5 at a 400 W target.
double plant(double u) {
  return 500 - 200 * u;
}

TEST(BudgetController, ConvergesWithoutOvershootOnTheDesignPlant) {
  BudgetConfig c;
  c.target = 400;
  BudgetController pi(c);
  double u = 0, worst_below = 0;
  for (int i = 0; i < 40; ++i) {
    const double y = plant(u);  // the step ran with the previous u
    if (i > 0) worst_below = std::max(worst_below, (c.target - y) / c.target);
    u = pi.update(y);
  }
  EXPECT_NEAR(plant(u), 400, 400 * c.deadband + 1e-9);
  EXPECT_LE(worst_below, 0.01);  // the tuning rule's roots are 0.65 and −0.15: at most a small undershoot
  // Settles to ±5 % quickly: e ×0.65 per step from 25 %.
  BudgetController pi2(c);
  u = 0;
  int settled = -1;
  for (int i = 0; i < 40 && settled < 0; ++i) {
    const double y = plant(u);
    if (std::abs(y - 400) <= 20) settled = i;
    u = pi2.update(y);
  }
  EXPECT_GE(settled, 0);
  EXPECT_LE(settled, 5);
}

TEST(BudgetController, NoiseInsideTheDeadbandDoesNotMoveTheKnob) {
  BudgetConfig c;
  c.target = 400;
  c.deadband = 0.02;
  BudgetController pi(c);
  double u = 0;
  for (int i = 0; i < 40; ++i) u = pi.update(plant(u));
  const double held = pi.u(), integral = pi.integral();
  for (int i = 0; i < 100; ++i) {
    const double noisy = 400 * (1 + (i % 3 - 1) * 0.0199);
    EXPECT_EQ(pi.update(noisy), held);
  }
  EXPECT_EQ(pi.integral(), integral);
  // Outside the band it acts, in the right direction.
  EXPECT_GT(pi.update(400 * 1.05), held);
}

TEST(BudgetController, RateLimitAndFloor) {
  BudgetConfig c;
  c.target = 100;
  c.max_du = 0.1;
  BudgetController pi(c);
  double prev = 0;
  for (int i = 0; i < 20; ++i) {
    const double u = pi.update(300);  // far above target
    EXPECT_LE(u - prev, 0.1 + 1e-12);
    prev = u;
  }
  EXPECT_EQ(prev, 1.0);
  // A floor wins over the rate limit and over a measurement far below target.
  BudgetController low(c);
  EXPECT_EQ(low.update(10, 0.7), 0.7);
  EXPECT_EQ(low.update(10, 0.7), 0.7);
  EXPECT_EQ(low.integral(), 0.0);  // held up by the floor with the error pushing down: no integration
  // The floor released: u goes back down at the rate limit.
  EXPECT_NEAR(low.update(10, 0.0), 0.6, 1e-12);
}

TEST(BudgetController, AntiWindupModes) {
  // 100 steps saturated at 1 with the measurement 50 % above target (infeasible), then far below target.
  auto run = [](AntiWindup m) {
    BudgetConfig c;
    c.target = 100;
    c.anti_windup = m;
    BudgetController pi(c);
    for (int i = 0; i < 100; ++i) pi.update(150);
    const double wound = pi.integral();
    int steps_to_leave = 0;
    while (pi.update(60) >= 1.0 && steps_to_leave < 1000) ++steps_to_leave;
    return std::pair{wound, steps_to_leave};
  };
  const auto cond = run(AntiWindup::Conditional), back = run(AntiWindup::BackCalculation),
             none = run(AntiWindup::None);
  // Conditional: the integral stops where saturation began (just above 1); back-calculation: it settles at
  // 1 + (ki − kp)·e_d = 1.288; none: ki · (0.5 − deadband) per step, unbounded.
  EXPECT_LE(cond.first, 1.3);
  EXPECT_NEAR(back.first, 1 + (0.8 - 0.2) * 0.48, 1e-9);
  EXPECT_NEAR(none.first, 100 * 0.8 * 0.48, 1e-9);
  EXPECT_LE(cond.second, 1);  // leaves saturation within a step of the error changing sign
  EXPECT_LE(back.second, 1);
  EXPECT_GT(none.second, 50);
}

TEST(BudgetController, TargetStepsAndReset) {
  BudgetConfig c;
  c.target = 400;
  BudgetController pi(c);
  double u = 0;
  for (int i = 0; i < 40; ++i) u = pi.update(plant(u));
  pi.set_target(350);
  for (int i = 0; i < 40; ++i) u = pi.update(plant(u));
  EXPECT_NEAR(plant(u), 350, 350 * c.deadband + 1e-9);
  pi.reset(1.0);
  EXPECT_EQ(pi.u(), 1.0);
  EXPECT_EQ(pi.update(350), 1.0);  // at the target: stays where it was put
}

TEST(BudgetController, GainRuleFromAMeasuredPlantGain) {
  const PiGains g = gains_for_plant(-200, 400);  // the sign does not matter
  EXPECT_DOUBLE_EQ(g.ki, 0.4 / 0.5);
  EXPECT_DOUBLE_EQ(g.kp, 0.2);
  BudgetConfig defaults;
  EXPECT_DOUBLE_EQ(defaults.ki, g.ki);  // the defaults are the rule at γ = 0.5
  EXPECT_DOUBLE_EQ(defaults.kp, g.kp);
  EXPECT_DOUBLE_EQ(gains_for_plant(100, 400, 1.0).ki, 4.0);
  EXPECT_NE(error_of([] { gains_for_plant(0, 400); }).find("dy/du"), std::string::npos);
  EXPECT_NE(error_of([] { gains_for_plant(std::nan(""), 400); }).find("dy/du"), std::string::npos);
  EXPECT_NE(error_of([] { gains_for_plant(100, -1); }).find("target"), std::string::npos);
  EXPECT_NE(error_of([] { gains_for_plant(100, 400, 0); }).find("alpha"), std::string::npos);
}

TEST(BudgetController, BadValuesAreClearErrors) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto bad = [](auto edit) {
    BudgetConfig c;
    c.target = 400;
    edit(c);
    return error_of([&] { BudgetController pi(c); });
  };
  EXPECT_NE(bad([](BudgetConfig& c) { c.target = -5; }).find("target = -5 W"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.target = 0; }).find("target"), std::string::npos);
  EXPECT_NE(bad([nan](BudgetConfig& c) { c.target = nan; }).find("target"), std::string::npos);
  EXPECT_NE(bad([inf](BudgetConfig& c) { c.target = inf; }).find("target"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) {
              c.measure = Measure::JoulesPerToken;
              c.target = -1;
            }).find("J/token"),
            std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.kp = -0.1; }).find("kp"), std::string::npos);
  EXPECT_NE(bad([nan](BudgetConfig& c) { c.kp = nan; }).find("kp"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.ki = 0; }).find("ki"), std::string::npos);
  EXPECT_NE(bad([nan](BudgetConfig& c) { c.ki = nan; }).find("ki"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.deadband = 0.5; }).find("deadband"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.deadband = -0.01; }).find("deadband"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.max_du = 0; }).find("max_du"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.max_du = 1.5; }).find("max_du"), std::string::npos);
  EXPECT_NE(bad([](BudgetConfig& c) { c.kb = 0; }).find("kb"), std::string::npos);

  BudgetConfig c;
  c.target = 400;
  BudgetController pi(c);
  EXPECT_NE(error_of([&] { pi.set_target(-10); }).find("target = -10"), std::string::npos);
  EXPECT_NE(error_of([&] { pi.set_target(nan); }).find("target"), std::string::npos);
  EXPECT_NE(error_of([&] { pi.update(nan); }).find("measured power"), std::string::npos);
  EXPECT_NE(error_of([&] { pi.update(-3); }).find("measured power"), std::string::npos);
  EXPECT_EQ(pi.target(), 400);  // a rejected target leaves the old one
}

}  // namespace
}  // namespace wattmoe
