// AdaptationShare (serve/adaptation_share.h): the share is adaptation's part of the recent decayed time; with
// requests in flight adaptation is held back at or above the cap, never while none is in flight, never with cap 1;
// old time fades (τ), so a burst of adaptation long ago does not hold it back now.
#include "serve/adaptation_share.h"

#include <gtest/gtest.h>

namespace wattmoe {
namespace {

TEST(AdaptationShare, HoldsAdaptationBackAtTheCapOnlyWhileRequestsRun) {
  AdaptationShare s(0.25, 10);
  EXPECT_EQ(s.share(0), 0);
  EXPECT_TRUE(s.allow(true, 0));  // nothing recorded yet
  s.serving(0.3, 1.0);
  s.adaptation(0.1, 1.0);
  EXPECT_NEAR(s.share(1.0), 0.25, 1e-12);  // at the cap: held back while requests run, not otherwise
  EXPECT_FALSE(s.allow(true, 1.0));
  EXPECT_TRUE(s.allow(false, 1.0));
  s.serving(0.1, 1.0);  // more serving: under the cap again
  EXPECT_NEAR(s.share(1.0), 0.2, 1e-12);
  EXPECT_TRUE(s.allow(true, 1.0));
  // Decay: both sums fade alike, so the share of the past does not change by waiting…
  EXPECT_NEAR(s.share(11.0), 0.2, 1e-12);
  // …but new time weighs more than old: 20 s later, 0.1 s of adaptation beside 0.1 s of serving lifts it to ~0.42.
  s.adaptation(0.1, 21.0);
  s.serving(0.1, 21.0);
  const double old = 0.5 * std::exp(-2.0);  // the first 0.5 s, 20 s (2 τ) ago
  EXPECT_NEAR(s.share(21.0), (0.1 + 0.1 * std::exp(-2.0)) / (0.2 + old), 1e-12);
  EXPECT_FALSE(s.allow(true, 21.0));
}

TEST(AdaptationShare, CapOneNeverHoldsBack) {
  AdaptationShare s(1.0);
  s.adaptation(5, 0);
  EXPECT_NEAR(s.share(0), 1.0, 1e-12);
  EXPECT_TRUE(s.allow(true, 0));
}

}  // namespace
}  // namespace wattmoe
