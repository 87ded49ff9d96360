// ThermalGuard: the floor ramp, prediction from the slope, the jump on a throttle bit, release hysteresis and
// decay; then the closed loop on the simulated GPU with a hot ambient, where the guard must act before the
// simulator throttles, and the same run without the guard must throttle.
#include "control/thermal_guard.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "control_test_util.h"

namespace wattmoe {
namespace {

using control_test::controller_for;
using control_test::error_of;
using control_test::mixtral_plant;
using control_test::run_loop;

Sample margin_sample(double t, double margin, uint64_t bits = 0) {
  Sample s;
  s.time_s = t;
  s.thermal_margin_c = margin;
  s.clock_event_reasons = bits;
  return s;
}

TEST(ThermalGuard, FloorRampIsSmoothAndMonotone) {
  ThermalConfig c;
  EXPECT_EQ(thermal_floor_for_margin(c, c.margin_start_c), 0.0);
  EXPECT_EQ(thermal_floor_for_margin(c, c.margin_start_c + 5), 0.0);
  EXPECT_DOUBLE_EQ(thermal_floor_for_margin(c, c.margin_full_c), c.floor_max);
  EXPECT_DOUBLE_EQ(thermal_floor_for_margin(c, -10), c.floor_max);
  EXPECT_NEAR(thermal_floor_for_margin(c, 0.5 * (c.margin_start_c + c.margin_full_c)), 0.5 * c.floor_max,
              1e-12);
  double prev = 0;
  for (double m = c.margin_start_c + 1; m >= c.margin_full_c - 1; m -= 0.05) {
    const double f = thermal_floor_for_margin(c, m);
    EXPECT_GE(f, prev);
    EXPECT_LE(f - prev, 0.05);  // smooth: no jumps
    prev = f;
  }
  EXPECT_EQ(thermal_floor_for_margin(c, kNaN), 0.0);
}

TEST(ThermalGuard, AMinimumFitSpanIgnoresTheLoadOnsetJump) {
  // What an H200 showed at load onset: the margin drops 9 C within 0.25 s, then swings ±5 C from step to step,
  // with 29 C left. Extrapolating a sub-second fit 10 s ahead predicts throttling; a fit over 4 s does not.
  auto onset = [](double t) { return t < 0.25 ? 38.0 : 29.0 + ((int(t / 0.25) % 2) ? 5.0 : -5.0); };
  ThermalConfig eager;
  ThermalConfig patient;
  patient.min_fit_span_s = 4;
  ThermalGuard ge(eager), gp(patient);
  bool eager_acted = false, patient_acted = false;
  for (int i = 0; i <= 40; ++i) {
    const double t = 0.25 * i;
    ge.update(margin_sample(t, onset(t)), 0.25);
    gp.update(margin_sample(t, onset(t)), 0.25);
    eager_acted = eager_acted || ge.active();
    patient_acted = patient_acted || gp.active();
  }
  EXPECT_TRUE(eager_acted);  // the failure mode this option exists for
  EXPECT_FALSE(patient_acted);
  // A sustained fall (2 C/s from 29 C) is still seen early: the floor rises while the margin is above 6 C.
  double first_active_margin = -1;
  for (int i = 1; i <= 40 && first_active_margin < 0; ++i) {
    const double t = 10 + 0.25 * i, m = 29 - 0.5 * i;
    gp.update(margin_sample(t, m), 0.25);
    if (gp.active()) first_active_margin = m;
  }
  EXPECT_GT(first_active_margin, patient.margin_start_c);
  patient.min_fit_span_s = patient.slope_window_s + 1;
  EXPECT_THROW(ThermalGuard{patient}, Error);
}

TEST(ThermalGuard, PredictsFromTheSlopeAndActsBeforeTheMarginIsSmall) {
  ThermalConfig c;  // lookahead 10 s, start at 6 C
  ThermalGuard g(c);
  // Margin falling 0.5 C/s from 15 C: the floor must rise while the margin itself is still above 6 C (it is
  // predicted to reach 6 C 10 s later).
  double first_active_margin = -1;
  for (int i = 0; i <= 40; ++i) {
    const double t = 0.25 * i, m = 15 - 0.5 * t;
    g.update(margin_sample(t, m), 0.25);
    if (g.active() && first_active_margin < 0) first_active_margin = m;
  }
  EXPECT_NEAR(g.slope_c_per_s(), -0.5, 1e-9);
  EXPECT_NEAR(g.predicted_margin_c(), g.margin_c() - 5.0, 1e-9);
  EXPECT_GT(first_active_margin, c.margin_start_c + 4);
  // Now at 10 C, predicted 5 C: the floor is what 5 C gives, although the present margin is far from the
  // ramp.
  EXPECT_NEAR(g.floor(), thermal_floor_for_margin(c, 5.0), 1e-9);
  EXPECT_GT(g.floor(), 0);
}

TEST(ThermalGuard, ThrottleBitJumpsTheFloor) {
  ThermalConfig c;
  c.jump_floor = 0.8;
  ThermalGuard g(c);
  g.update(margin_sample(0, 20), 0.25);
  EXPECT_EQ(g.floor(), 0.0);
  for (uint64_t bit :
       {ClockEvent::kSwThermalSlowdown, ClockEvent::kHwThermalSlowdown, ClockEvent::kHwSlowdown}) {
    ThermalGuard h(c);
    h.update(margin_sample(0, 20), 0.25);
    h.update(margin_sample(0.25, 20, bit | ClockEvent::kSwPowerCap), 0.25);
    EXPECT_EQ(h.floor(), 0.8) << bit;
    EXPECT_TRUE(h.reason_bit_seen());
  }
  // The power-cap bit alone is not thermal.
  g.update(margin_sample(0.25, 20, ClockEvent::kSwPowerCap | ClockEvent::kGpuIdle), 0.25);
  EXPECT_EQ(g.floor(), 0.0);
}

TEST(ThermalGuard, FloorHoldsInsideTheHysteresisAndThenDecaysAtTheRate) {
  ThermalConfig c;  // start 6, full 1, hysteresis 1.5, decay 0.05/s
  ThermalGuard g(c);
  double t = 0;
  auto feed = [&](double m, int n) {
    for (int i = 0; i < n; ++i) {
      t += 0.25;
      g.update(margin_sample(t, m), 0.25);
    }
  };
  feed(3.5, 40);  // steady at the middle of the ramp
  const double held = g.floor();
  EXPECT_NEAR(held, thermal_floor_for_margin(c, 3.5), 1e-9);
  feed(4.5, 40);  // 1 C better: inside the 1.5 C hysteresis once the slope is gone
  EXPECT_EQ(g.floor(), held);
  // Plenty of margin: falls, but no faster than decay_per_s.
  double prev = g.floor();
  for (int i = 0; i < 200; ++i) {
    t += 0.25;
    g.update(margin_sample(t, 20), 0.25);
    EXPECT_GE(g.floor(), prev - c.decay_per_s * 0.25 - 1e-12);
    EXPECT_LE(g.floor(), prev);
    prev = g.floor();
  }
  EXPECT_EQ(g.floor(), 0.0);
}

TEST(ThermalGuard, UsesTemperatureWhenTheSensorHasNoMarginAndIgnoresMissingData) {
  ThermalConfig c;
  c.slowdown_temp_c = 85;
  ThermalGuard g(c);
  Sample s;
  s.gpu_temp_c = 83;  // 2 C margin, no time: the guard keeps its own clock
  g.update(s, 0.5);
  EXPECT_NEAR(g.margin_c(), 2.0, 1e-12);
  EXPECT_GT(g.floor(), 0.5);

  ThermalGuard blind(ThermalConfig{});
  Sample none;  // nothing thermal at all
  for (int i = 0; i < 5; ++i) blind.update(none, 0.25);
  EXPECT_EQ(blind.floor(), 0.0);
  EXPECT_TRUE(std::isnan(blind.margin_c()));
}

TEST(ThermalGuard, BadConfigAndInputsAreClearErrors) {
  auto bad = [](auto edit) {
    ThermalConfig c;
    edit(c);
    return error_of([&] { ThermalGuard g(c); });
  };
  EXPECT_NE(bad([](ThermalConfig& c) { c.lookahead_s = 0; }).find("lookahead_s"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.lookahead_s = kNaN; }).find("lookahead_s"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.slope_window_s = -1; }).find("slope_window_s"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.margin_full_c = 7; }).find("margin_full_c"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.floor_max = 1.5; }).find("floor_max"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.jump_floor = -0.1; }).find("jump_floor"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.release_hysteresis_c = -1; }).find("release_hysteresis_c"),
            std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.decay_per_s = 0; }).find("decay_per_s"), std::string::npos);
  EXPECT_NE(bad([](ThermalConfig& c) { c.slowdown_temp_c = INFINITY; }).find("slowdown_temp_c"),
            std::string::npos);

  ThermalGuard g(ThermalConfig{});
  EXPECT_NE(error_of([&] { g.update(margin_sample(1, 10), 0); }).find("dt"), std::string::npos);
  g.update(margin_sample(5, 10), 0.25);
  EXPECT_NE(error_of([&] { g.update(margin_sample(4, 10), 0.25); }).find("before the previous"),
            std::string::npos);
}

// Hot ambient: at full quality the simulated GPU settles near 90 C (throttles above 85 C); at u = 1 near 79
// C.
ClosedLoopPlantConfig hot_plant() {
  ClosedLoopPlantConfig p = mixtral_plant();
  p.gpu.ambient_c = 58;
  return p;
}

TEST(ThermalGuard, ClosedLoopActsBeforeTheSimulatorThrottles) {
  const int steps = 600;  // 150 s, several thermal time constants
  auto first_of = [](const std::vector<double>& v, auto pred) {
    for (size_t i = 0; i < v.size(); ++i)
      if (pred(v[i])) return int(i);
    return -1;
  };
  auto first_bit = [](const std::vector<uint64_t>& v) {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] & kThermalReasonBits) return int(i);
    return -1;
  };

  // The power budget is generous (1000 W): only the guard limits the effort.
  ClosedLoopPlant guarded_plant(hot_plant());
  Controller guarded(controller_for(guarded_plant.config(), "cost", 1000));
  auto g = run_loop(guarded, guarded_plant, steps);

  ControllerConfig off = controller_for(hot_plant(), "cost", 1000);
  off.thermal.enabled = false;
  ClosedLoopPlant open_plant(hot_plant());
  Controller unguarded(off);
  auto o = run_loop(unguarded, open_plant, steps);

  const int guard_acts = first_of(g.floor, [](double f) { return f > 0; });
  const int guarded_throttle = first_bit(g.thermal_bits), unguarded_throttle = first_bit(o.thermal_bits);
  double max_temp_guarded = 0, max_temp_open = 0;
  for (double x : g.temp) max_temp_guarded = std::max(max_temp_guarded, x);
  for (double x : o.temp) max_temp_open = std::max(max_temp_open, x);
  std::printf(
      "thermal: guard acts at step %d (%.1f s, %.1f C); guarded throttles at %d; unguarded throttles at step "
      "%d (%.1f s); max temperature %.2f C guarded vs %.2f C; final floor %.3f\n",
      guard_acts, 0.25 * guard_acts, g.temp[size_t(std::max(guard_acts, 0))], guarded_throttle,
      unguarded_throttle, 0.25 * unguarded_throttle, max_temp_guarded, max_temp_open, g.floor.back());
  ASSERT_GE(guard_acts, 0);
  ASSERT_GE(unguarded_throttle, 0);           // without the guard the simulator throttles...
  EXPECT_LT(guard_acts, unguarded_throttle);  // ...and the guard acted before that point,
  EXPECT_EQ(guarded_throttle, -1);            // and with it the simulator never set a thermal bit.
  EXPECT_LT(max_temp_guarded, guarded_plant.gpu().params().slowdown_temp_c);
  EXPECT_GT(max_temp_open, open_plant.gpu().params().slowdown_temp_c);
  for (double f : o.floor) EXPECT_EQ(f, 0.0);
}

TEST(ThermalGuard, WhenEffortIsNotEnoughTheLadderGoesDownForHeat) {
  // Hotter still: even u = 1 settles near 87 C, above the 85 C slowdown. Only the ladder (top-1, masks,
  // smaller batches) can keep the GPU from throttling.
  ClosedLoopPlantConfig pc = hot_plant();
  pc.gpu.ambient_c = 66;
  ClosedLoopPlant plant(pc);
  Controller ctl(controller_for(pc, "cost", 1000));
  auto t = run_loop(ctl, plant, 600);
  int throttled = 0;
  for (uint64_t b : t.thermal_bits) throttled += (b & kThermalReasonBits) != 0;
  double max_temp = 0;
  for (double x : t.temp) max_temp = std::max(max_temp, x);
  std::printf("thermal ladder: final level %d rung %d, throttled steps %d, max temperature %.2f C\n",
              ctl.ladder().level(), t.rung.back(), throttled, max_temp);
  for (const auto& e : ctl.ladder().events())
    std::printf("  step %lld: %s\n", (long long)e.step, e.reason.c_str());
  ASSERT_FALSE(ctl.ladder().events().empty());
  EXPECT_NE(ctl.ladder().events().front().reason.find("thermal"), std::string::npos);
  EXPECT_GE(t.rung.back(), 1);
  EXPECT_EQ(throttled, 0);
}

}  // namespace
}  // namespace wattmoe
