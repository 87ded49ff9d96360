// Page-Hinkley drift detection: bounded delay after an upward mean shift, no alarm on a long stationary stream,
// restart after an alarm and on reset().
#include <gtest/gtest.h>

#include "adapt/page_hinkley.h"
#include "core/error.h"
#include "core/rng.h"

namespace wattmoe::test {
namespace {

TEST(AdaptPageHinkley, AlarmsWithinBoundedDelayAfterShift) {
  // Window losses ~ N(1.3, 0.1²), then a shift of +0.5 nats (a noisier domain). Expected delay ≈ λ/(s − δ) ≈ 4.4
  // windows once the running mean has absorbed a few shifted samples; allow 12.
  const PageHinkleyConfig cfg{0.05, 2.0, 10};
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    PageHinkley ph(cfg);
    Rng rng(seed);
    for (int t = 0; t < 300; ++t) ASSERT_FALSE(ph.update(1.3 + 0.1 * rng.normal())) << "seed " << seed << " t " << t;
    int delay = -1;
    for (int t = 0; t < 50 && delay < 0; ++t)
      if (ph.update(1.8 + 0.1 * rng.normal())) delay = t;
    EXPECT_GE(delay, 0) << "seed " << seed << ": no alarm after the shift";
    EXPECT_LE(delay, 12) << "seed " << seed;
    EXPECT_EQ(ph.samples(), 0) << "the test restarts after an alarm";
  }
}

TEST(AdaptPageHinkley, NoAlarmOnLongStationaryStream) {
  PageHinkley ph({0.05, 2.0, 10});
  Rng rng(99);
  int alarms = 0;
  for (int t = 0; t < 20000; ++t) alarms += ph.update(1.3 + 0.1 * rng.normal()) ? 1 : 0;
  EXPECT_EQ(alarms, 0);
  EXPECT_GE(ph.statistic(), 0.0);
}

TEST(AdaptPageHinkley, DownwardShiftIsNotAnAlarm) {
  PageHinkley ph({0.05, 2.0, 10});
  Rng rng(3);
  for (int t = 0; t < 100; ++t) ph.update(2.0 + 0.1 * rng.normal());
  for (int t = 0; t < 1000; ++t) EXPECT_FALSE(ph.update(1.0 + 0.1 * rng.normal()));
}

TEST(AdaptPageHinkley, MinSamplesAndReset) {
  PageHinkley ph({0.0, 1.0, 5});
  // A big jump at sample 2: statistic exceeds λ at once, but no alarm before 5 samples.
  EXPECT_FALSE(ph.update(0.0));
  EXPECT_FALSE(ph.update(10.0));
  EXPECT_GT(ph.statistic(), 1.0);
  EXPECT_FALSE(ph.update(10.0));
  EXPECT_FALSE(ph.update(10.0));
  EXPECT_TRUE(ph.update(10.0));  // 5th sample, statistic still above λ
  EXPECT_EQ(ph.samples(), 0);
  ph.update(3.0);
  ph.reset();
  EXPECT_EQ(ph.samples(), 0);
  EXPECT_EQ(ph.statistic(), 0.0);
}

TEST(AdaptPageHinkley, BadConfigIsError) {
  auto msg = [](PageHinkleyConfig c) {
    try {
      PageHinkley ph(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({-0.1, 2.0, 10}).find("delta"), std::string::npos);
  EXPECT_NE(msg({0.1, 0.0, 10}).find("lambda"), std::string::npos);
  EXPECT_NE(msg({0.1, 1.0, 0}).find("min_samples"), std::string::npos);
  PageHinkley ph;
  EXPECT_THROW(ph.update(NAN), Error);
}

}  // namespace
}  // namespace wattmoe::test
