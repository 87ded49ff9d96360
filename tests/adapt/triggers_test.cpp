// Triggers fire when, and only when, they should; adaptive frequency grows while adapting does not pay and resets on
// drift; combined triggers are any-of.
#include <gtest/gtest.h>

#include "adapt/triggers.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

std::vector<bool> run(Triggers& t, int windows, const std::function<TriggerInput(int)>& in) {
  std::vector<bool> fired;
  for (int w = 0; w < windows; ++w) fired.push_back(t.decide(in(w)).fire);
  return fired;
}

TEST(AdaptTriggers, NoneEnabledNeverFires) {
  Triggers t;
  EXPECT_FALSE(t.config().any_enabled());
  Sample s;
  s.power_w = 1000, s.thermal_margin_c = -5, s.clock_event_reasons = ~0ull;
  for (int w = 0; w < 20; ++w) {
    const TriggerDecision d = t.decide({w, 100.0, true, &s});
    EXPECT_FALSE(d.fire);
    EXPECT_TRUE(d.reason.empty());
  }
}

TEST(AdaptTriggers, AlwaysAndEvery) {
  Triggers a(TriggerConfig{.always = true});
  for (bool f : run(a, 5, [](int w) { return TriggerInput{w}; })) EXPECT_TRUE(f);
  Triggers e(TriggerConfig{.every = 3});
  const auto f = run(e, 10, [](int w) { return TriggerInput{w}; });
  for (int w = 0; w < 10; ++w) EXPECT_EQ(f[size_t(w)], w % 3 == 0) << w;
  EXPECT_EQ(e.decide({9}).reason, "every");
}

TEST(AdaptTriggers, PowerAndThermal) {
  TriggerConfig c;
  c.power_above_w = 300;
  Triggers p(c);
  Sample s;
  EXPECT_FALSE(p.decide({0, 1, false, nullptr}).fire) << "no sample";
  EXPECT_FALSE(p.decide({1, 1, false, &s}).fire) << "NaN power";
  s.power_w = 300;
  EXPECT_FALSE(p.decide({2, 1, false, &s}).fire) << "at the threshold";
  s.power_w = 301;
  EXPECT_EQ(p.decide({3, 1, false, &s}).reason, "power");

  TriggerConfig tc;
  tc.thermal_margin_below_c = 5;
  tc.clock_event_mask = kThermalClockEvents;
  Triggers t(tc);
  Sample h;
  EXPECT_FALSE(t.decide({0, 1, false, &h}).fire);
  h.thermal_margin_c = 5;
  EXPECT_FALSE(t.decide({1, 1, false, &h}).fire);
  h.thermal_margin_c = 4.5;
  EXPECT_EQ(t.decide({2, 1, false, &h}).reason, "thermal");
  h.thermal_margin_c = 20;
  h.clock_event_reasons = ClockEvent::kSwPowerCap;  // not a thermal bit
  EXPECT_FALSE(t.decide({3, 1, false, &h}).fire);
  h.clock_event_reasons = ClockEvent::kSwPowerCap | ClockEvent::kHwThermalSlowdown;
  EXPECT_EQ(t.decide({4, 1, false, &h}).reason, "thermal");
}

TEST(AdaptTriggers, DriftOpensBurst) {
  Triggers t(TriggerConfig{.on_drift = true, .drift_burst = 3});
  const auto f = run(t, 12, [](int w) { return TriggerInput{w, 1.0, w == 2 || w == 8}; });
  const std::vector<bool> want = {false, false, true, true, true, false, false, false, true, true, true, false};
  EXPECT_EQ(f, want);
}

TEST(AdaptTriggers, ComplexityAgainstRunningEma) {
  TriggerConfig c;
  c.complexity_factor = 1.5;
  c.complexity_alpha = 0.5;
  Triggers t(c);
  EXPECT_FALSE(t.decide({0, 10.0}).fire) << "the first window only seeds the EMA";
  EXPECT_FALSE(t.decide({1, 14.0}).fire);         // 14 ≤ 1.5·10; ema → 12
  EXPECT_TRUE(t.decide({2, 18.5}).fire);          // 18.5 > 18; ema → 15.25
  EXPECT_FALSE(t.decide({3, 22.0}).fire);         // 22 ≤ 22.875
  EXPECT_EQ(t.decide({4, 100.0}).reason, "complexity");
}

TEST(AdaptTriggers, AdaptiveFrequencyGrowsAndResetsOnDrift) {
  TriggerConfig c;
  c.adaptive = true;
  c.adaptive_max_interval = 8;
  c.adaptive_min_gain = 0.01;
  Triggers t(c);
  std::vector<int> fired_at;
  for (int w = 0; w < 40; ++w) {
    if (t.decide({w}).fire) {
      fired_at.push_back(w);
      t.report_gain(0.001);  // adapting does not pay: the interval doubles
    }
  }
  // Each fire doubles the interval before the next one: 2, 4, 8, 8, ... → fires at 0, 2, 6, 14, 22, 30, 38.
  EXPECT_EQ(fired_at, (std::vector<int>{0, 2, 6, 14, 22, 30, 38}));
  EXPECT_EQ(t.interval(), 8);
  // A paying adaptation keeps the interval.
  t.report_gain(0.5);
  EXPECT_EQ(t.interval(), 8);
  // Drift: interval back to 1 and fires at once.
  EXPECT_TRUE(t.decide({40, 1.0, true}).fire);
  EXPECT_EQ(t.interval(), 1);
  EXPECT_TRUE(t.decide({41}).fire);
}

TEST(AdaptTriggers, CombinedIsAnyOf) {
  TriggerConfig c;
  c.every = 4;
  c.power_above_w = 200;
  Triggers t(c);
  Sample s;
  s.power_w = 250;
  const TriggerDecision d = t.decide({0, 1, false, &s});
  EXPECT_TRUE(d.fire);
  EXPECT_EQ(d.reason, "every|power");
  EXPECT_EQ(t.decide({1, 1, false, &s}).reason, "power");
  s.power_w = 100;
  EXPECT_FALSE(t.decide({2, 1, false, &s}).fire);
  EXPECT_EQ(t.decide({4, 1, false, &s}).reason, "every");
}

TEST(AdaptTriggers, BadConfigIsError) {
  auto msg = [](TriggerConfig c) {
    try {
      Triggers t(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({.every = -1}).find("every"), std::string::npos);
  EXPECT_NE(msg({.power_above_w = -3}).find("power_above_w"), std::string::npos);
  EXPECT_NE(msg({.thermal_margin_below_c = INFINITY}).find("thermal_margin_below_c"), std::string::npos);
  EXPECT_NE(msg({.drift_burst = 0}).find("drift_burst"), std::string::npos);
  EXPECT_NE(msg({.complexity_factor = 0.5}).find("complexity_factor"), std::string::npos);
  EXPECT_NE(msg({.complexity_alpha = 0}).find("complexity_alpha"), std::string::npos);
  EXPECT_NE(msg({.adaptive_max_interval = 0}).find("adaptive_max_interval"), std::string::npos);
  EXPECT_NE(msg({.adaptive_min_gain = NAN}).find("adaptive_min_gain"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe::test
