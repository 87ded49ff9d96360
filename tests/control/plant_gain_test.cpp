// PlantGainEstimator (the slope it trusts, the cases it refuses, the bound it gives instead) and the Controller with
// gains.adapt on a plant whose power barely follows the knob: it settles where the default gains crawl, and on a
// plant too weak and noisy to measure it reaches the end of the knob's range sooner.
#include "control/plant_gain.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "control/controller.h"
#include "control_test_util.h"
#include "core/rng.h"

namespace wattmoe {
namespace {

using control_test::error_of;

TEST(PlantGain, RecoversTheSlopeOfANoisyLine) {
  PlantGainEstimator e;
  Rng rng(7);
  for (int i = 0; i < 12; ++i) {
    const double u = 0.05 * i;
    e.add(u, 140 - 5 * u + 0.3 * rng.normal());
  }
  ASSERT_TRUE(e.slope().has_value());
  EXPECT_NEAR(*e.slope(), -5, 1.0);
}

TEST(PlantGain, RefusesWhatItCannotTrust) {
  PlantGainEstimator e;
  for (int i = 0; i < 12; ++i) e.add(0.3, 140 + 0.1 * i);  // u never moved
  EXPECT_FALSE(e.slope().has_value());
  e.reset();
  EXPECT_EQ(e.size(), 0);
  for (int i = 0; i < 12; ++i) e.add(0.05 * i, 140 + 2 * 0.05 * i);  // more effort, more power
  EXPECT_FALSE(e.slope().has_value());
  e.reset();
  for (int i = 0; i < 5; ++i) e.add(0.1 * i, 140 - 10 * 0.1 * i);  // fewer than min_points
  EXPECT_FALSE(e.slope().has_value());
  e.reset();
  for (int i = 0; i < 12; ++i) e.add(0.05 * i, 140 + 3 * std::sin(7.0 * i));  // no relation: within the noise
  EXPECT_FALSE(e.slope().has_value());
  e.add(NAN, 1), e.add(0.1, INFINITY);  // ignored
  EXPECT_EQ(e.size(), 12);
}

// Too noisy to trust the slope, but u moved: the bound covers the true strength and is finite; no bound without
// spread.
TEST(PlantGain, BoundsAPlantTooWeakToMeasure) {
  PlantGainEstimator e;
  Rng rng(11);
  for (int i = 0; i < 12; ++i) {
    const double u = 0.02 * i;
    e.add(u, 148 - 5 * u + 2.5 * rng.normal());  // the H100 serve plant: 5 W over the range, ±2.5 W windows
  }
  EXPECT_FALSE(e.slope().has_value());
  ASSERT_TRUE(e.gain_bound().has_value());
  EXPECT_GT(*e.gain_bound(), 5);
  EXPECT_LT(*e.gain_bound(), 1000);
  e.reset();
  for (int i = 0; i < 12; ++i) e.add(0.3, 140 + rng.normal());  // u never moved
  EXPECT_FALSE(e.gain_bound().has_value());
}

TEST(PlantGain, OnlyTheLastWindowCounts) {
  PlantGainEstimator e;  // window 12
  for (int i = 0; i < 12; ++i) e.add(0.05 * i, 140 - 5 * 0.05 * i);
  for (int i = 0; i < 12; ++i) e.add(0.5 + 0.05 * i, 200 - 20 * (0.5 + 0.05 * i));
  ASSERT_TRUE(e.slope().has_value());
  EXPECT_NEAR(*e.slope(), -20, 1e-9);
}

TEST(PlantGain, BadConfigurationsNameTheField) {
  PlantGainConfig c;
  c.min_points = 2;
  EXPECT_NE(error_of([&] { validate(c); }).find("min_points"), std::string::npos);
  c = {}, c.ki_min = 0;
  EXPECT_NE(error_of([&] { validate(c); }).find("ki_min"), std::string::npos);
  c = {}, c.min_u_spread = 0;
  EXPECT_NE(error_of([&] { validate(c); }).find("min_u_spread"), std::string::npos);
}

// The skip policy's controller (no ladder, no thermal guard) on a plant y = p0 − span·u + noise·N(0, 1) (W) with
// budget `target`, from u = 0: the first step at which done(power measured, u decided) holds (1000: never in 200).
int steps_until(bool adapt, double target, double p0, double span, double noise, uint64_t seed,
                const std::function<bool(double, double)>& done, double deadband = BudgetConfig{}.deadband) {
  ControllerConfig c;
  c.budget.target = target, c.budget.deadband = deadband;
  c.knobs.policy = "skip", c.knobs.num_experts = 8, c.knobs.model_k = 2;
  c.thermal.enabled = false, c.ladder.enabled = false;
  c.gains.adapt = adapt;
  Controller ctl(c);
  Rng rng(seed);
  double u = 0;
  for (int step = 1; step <= 200; ++step) {
    ControlInput in;
    in.step = step, in.dt_s = 1, in.power_w = p0 - span * u + noise * rng.normal();
    u = ctl.update(in).u;
    if (done(in.power_w, u)) return step;
  }
  return 1000;
}

// ±0.5 W of noise and a 140 W budget: steps until the measurement stays within the 2% deadband for 5 steps in a row,
// with the default gains and with gains.adapt.
int steps_to_settle(bool adapt, double p0 = 150, double span = 15) {
  int inside = 0;
  return steps_until(adapt, 140, p0, span, 0.5, 3, [&](double power, double) {
    inside = std::abs(power - 140) <= 0.02 * 140 ? inside + 1 : 0;
    return inside == 5;
  });
}

// A board whose power moves 15 W over the knob's whole range at ~145 W (plant gain γ ≈ 0.1, a fifth of what the
// default gains assume; u ≈ 0.67 holds the budget): the adapted loop settles in under half the steps.
TEST(PlantGain, AdaptedGainsSettleWhereTheDefaultsCrawl) {
  const int fixed = steps_to_settle(false), adapted = steps_to_settle(true);
  std::printf("[settle] low-gain plant: default gains %d steps, adapted gains %d steps\n", fixed, adapted);
  EXPECT_LT(adapted, 40);
  EXPECT_LT(2 * adapted, fixed);
}

// The plant measured in serve on an H100 (docs/serve.md): 32 streams at ~148 W, skip's whole range moving ~5 W, 1 s
// windows ±2.5 W, a target routing cannot reach (140.3 W). Steps until u first reaches 1 (where the ladder's cheaper
// rungs begin): the slope is never trusted there, so only the bound speeds the loop up.
int steps_to_saturate(bool adapt) {
  return steps_until(adapt, 140.3, 148, 5, 2.5, 5, [](double, double u) { return u >= 1; });
}

TEST(PlantGain, TheBoundSaturatesAnUnreachableBudgetSooner) {
  const int fixed = steps_to_saturate(false), adapted = steps_to_saturate(true);
  std::printf("[saturate] H100 serve plant: default gains %d steps, adapted gains %d steps\n", fixed, adapted);
  EXPECT_LT(2 * adapted, fixed);
}

// The second budget segment measured in serve on an H100 with the bounded gains (docs/serve.md, fourth run): 32
// streams at ~141.6 W with u near 0, skip's whole range ~5 W, ±2 W windows, target 136.6 W (+3.7% at u = 0: past the
// 2% deadband by less than routing's whole range). Steps until u reaches 1 with the default deadband and with 0.005
// (--control-deadband): there u reached only 0.70 in 30 windows. With 0.02 the loop stops inside the deadband, ~2%
// above the target, and never reaches u = 1 (where the ladder's cheaper rungs begin).
int steps_to_saturate_near(double deadband) {
  return steps_until(true, 136.6, 141.6, 5, 2, 7, [](double, double u) { return u >= 1; }, deadband);
}

TEST(PlantGain, ASmallerDeadbandSaturatesANearBudgetSooner) {
  const int wide = steps_to_saturate_near(BudgetConfig{}.deadband), narrow = steps_to_saturate_near(0.005);
  std::printf("[saturate] H100 serve plant at +3.7%%: deadband 0.02 %d steps, 0.005 %d steps\n", wide, narrow);
  EXPECT_GT(wide, 200);  // never
  EXPECT_LT(narrow, 50);
}

// The same board with the ladder on (synthetic, modelled on the measured segment, not measured): skip moves 141.6 W
// (u 0) to 136.6 W (u 1), top-1 draws 139 W, and a batch share s draws idle 119.3 W + 19.7 W·(0.2 + 0.8·s), so
// the target, 133 W, is below what routing reaches and needs a share near 0.62. Judged as serve_bench judges a
// 30-window segment: over its second half, the mean within ±2% and every 4-window block within ±5%. It holds with
// a dwell of 4 (--ladder-dwell; the default 8 was 2–3% off on two of these seeds); the batch level's share, set by
// u, holds where top-1 (139 W, +4.5%) would stay above.
TEST(PlantGain, TheLadderHoldsABudgetBelowRoutingsReachWithinASegment) {
  constexpr double target = 133;
  for (uint64_t seed : {3u, 4u, 5u}) {
    ControllerConfig c;
    c.budget.target = target, c.budget.deadband = 0.005;
    c.knobs.policy = "skip", c.knobs.num_experts = 8, c.knobs.model_k = 2;
    c.thermal.enabled = false, c.gains.adapt = true;
    c.ladder.dwell = 4;
    Controller ctl(c);
    Rng rng(seed);
    ControlDecision d = ctl.initial();
    std::vector<double> tail;
    for (int step = 1; step <= 30; ++step) {
      const double share_w = 119.3 + 19.7 * (0.2 + 0.8 * d.batch_scale);
      const double base = d.rung == 0 ? 141.6 - 5 * d.u : d.rung < 3 ? 139.0 : share_w;
      ControlInput in;
      in.step = step, in.dt_s = 1, in.power_w = base + 2 * rng.normal();
      if (step > 15) tail.push_back(in.power_w);
      d = ctl.update(in);
    }
    double mean = 0, worst_block = 0;
    for (double w : tail) mean += w / double(tail.size());
    for (size_t b = 0; b + 4 <= tail.size(); b += 4) {
      const double block = (tail[b] + tail[b + 1] + tail[b + 2] + tail[b + 3]) / 4;
      worst_block = std::max(worst_block, std::abs(block - target) / target);
    }
    std::printf("[ladder] seed %llu: second-half mean %.2f W (%+.2f%%), worst 4-window block %.2f%%, share %.3f\n",
                static_cast<unsigned long long>(seed), mean, 100 * (mean - target) / target, 100 * worst_block,
                d.batch_scale);
    EXPECT_LT(std::abs(mean - target) / target, 0.02);
    EXPECT_LT(worst_block, 0.05);
    EXPECT_EQ(d.rung, 3);
    EXPECT_GT(d.batch_scale, 0.5);  // between the shares
  }
}

// A plant whose power moves 140 W over the range (γ ≈ 1, twice what the defaults assume; u ≈ 0.79): adapting lowers
// the gains and still settles.
TEST(PlantGain, AdaptedGainsStillSettleOnAStrongPlant) {
  const int fixed = steps_to_settle(false, 250, 140), adapted = steps_to_settle(true, 250, 140);
  std::printf("[settle] strong plant: default gains %d steps, adapted gains %d steps\n", fixed, adapted);
  EXPECT_LT(adapted, 40);
}

}  // namespace
}  // namespace wattmoe
