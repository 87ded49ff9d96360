// CollapseGuard's checks, SourceGuard's schedule, comparison, backoff and probation, and the EMA teacher, on hand-made
// window statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "adapt/stability.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

TEST(AdaptStability, GuardChecks) {
  const std::vector<std::vector<int64_t>> even = {{5, 5, 5, 5}, {}}, skewed = {{4, 4, 4, 4}, {13, 1, 1, 1}};
  CollapseGuard g({.entropy_floor = 0.5, .max_expert_share = 0.6});
  EXPECT_EQ(g.check({2.0, 1.0, &even}, true), "");
  EXPECT_EQ(g.check({2.0, 0.4, &even}, true), "entropy");
  EXPECT_EQ(g.check({2.0, 0.4, &even}, false), "") << "unadapted weights are never reset";
  EXPECT_EQ(g.check({2.0, 1.0, &skewed}, true), "expert_share");  // 13/16 > 0.6
  EXPECT_EQ(g.check({NAN, 1.0, &even}, true), "non_finite");
  EXPECT_EQ(g.check({2.0, INFINITY, &even}, false), "");
  CollapseGuard off;
  EXPECT_EQ(off.check({2.0, 0.0, &skewed}, true), "");
}

TEST(AdaptStability, LossAgainstReferenceEma) {
  CollapseGuard g({.loss_margin = 0.5, .loss_alpha = 0.5});
  EXPECT_EQ(g.check({2.0, 1.0}, false), "");   // seeds the reference at 2.0 (source weights)
  EXPECT_EQ(g.check({2.9, 1.0}, true), "");    // ≤ 1.5 × 2.0; ref → 2.45
  EXPECT_EQ(g.check({3.7, 1.0}, true), "loss");  // > 3.675
  EXPECT_EQ(g.check({3.7, 1.0}, false), "");
  CollapseGuard late({.loss_margin = 0.1});
  EXPECT_EQ(late.check({100.0, 1.0}, true), "") << "no reference before a window scored with the source weights";
}

TEST(AdaptStability, EmaTeacher) {
  const std::vector<float> src = {1, 2, 3, 4, 5};
  EmaTeacher t(0.75, {{1, 3}}, src);
  const std::vector<float> p = {9, 10, 11, 12, 13};
  t.update(p.data());
  EXPECT_EQ(t.params()[0], 1.f);
  EXPECT_EQ(t.params()[1], 0.75f * 2 + 0.25f * 10);
  EXPECT_EQ(t.params()[3], 0.75f * 4 + 0.25f * 12);
  EXPECT_EQ(t.params()[4], 5.f);
  t.reset(src.data());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(t.params()[i], src[i]);
  EXPECT_THROW(EmaTeacher(1.0, {}, src), Error);
}

TEST(AdaptStability, SourceGuardLiveScheduleAndBackoff) {
  SourceGuard g({.check_every = 3, .margin = 0.01, .alpha = 1.0, .backoff = 2, .max_backoff = 5, .probation = false});
  EXPECT_FALSE(g.on_probation());
  EXPECT_FALSE(g.due(false)) << "nothing to compare while θ = θ₀";
  std::vector<int> due;
  for (int i = 0; i < 7; ++i) due.push_back(g.due(true));
  EXPECT_EQ(due, (std::vector<int>{1, 0, 0, 1, 0, 0, 1})) << "the 1st, 4th, 7th window scored with θ ≠ θ₀";
  EXPECT_EQ(g.record(2.0, 2.0), "");
  EXPECT_EQ(g.record(2.019, 2.0), "") << "within the 1% margin";
  EXPECT_FALSE(g.begin_window());
  // Consecutive failures: backoff 2, 4, then capped at 5.
  for (int expect : {2, 4, 5, 5}) {
    EXPECT_EQ(g.record(2.1, 2.0), "worse_than_source");
    EXPECT_FALSE(g.on_probation());
    EXPECT_EQ(g.backoff_left(), expect);
    for (int i = 0; i < expect; ++i) EXPECT_TRUE(g.begin_window());
    EXPECT_FALSE(g.begin_window());
    EXPECT_TRUE(g.due(true)) << "the count restarts with adaptation";
  }
  EXPECT_EQ(g.failures(), 2) << "no longer counted at the cap";
  // A clearly better check halves the next backoff; an in-margin one keeps it.
  EXPECT_EQ(g.record(1.9, 2.0), "");
  EXPECT_EQ(g.failures(), 1);
  EXPECT_EQ(g.record(1.99, 2.0), "");
  EXPECT_EQ(g.failures(), 1);
  EXPECT_EQ(g.record(2.1, 2.0), "worse_than_source");
  EXPECT_EQ(g.backoff_left(), 4);
  EXPECT_EQ(g.record(NAN, 2.0), "worse_than_source") << "non-finite losses fail";
}

TEST(AdaptStability, SourceGuardRunningComparison) {
  SourceGuard g({.check_every = 1, .margin = 0.05, .alpha = 0.5, .probation = false});
  // Weights 0.25, 0.5 (the newest): rel = (0.25·1 + 0.5·1.03) / (0.25·1 + 0.5·1) − 1 = 0.02.
  EXPECT_EQ(g.record(1.0, 1.0), "");
  EXPECT_EQ(g.record(1.03, 1.0), "");
  EXPECT_NEAR(g.relative(), 0.02, 1e-12);
  EXPECT_EQ(g.record(1.06, 1.0), "");  // (0.125 + 0.2575 + 0.53) / 0.875 − 1 ≈ 0.043
  EXPECT_NEAR(g.relative(), 0.9125 / 0.875 - 1, 1e-12);
  EXPECT_EQ(g.record(1.08, 1.0), "worse_than_source");  // ≈ 0.061
  EXPECT_EQ(g.relative(), 0.0) << "the comparison restarts after a failure";
}

TEST(AdaptStability, SourceGuardProbation) {
  SourceGuard g({.check_every = 4, .margin = 0.01, .alpha = 1.0, .backoff = 3, .promote_after = 2});
  EXPECT_TRUE(g.on_probation()) << "the stream starts on probation";
  EXPECT_TRUE(g.due(true));
  EXPECT_TRUE(g.due(true)) << "on probation every adapted window is compared";
  EXPECT_EQ(g.record(1.5, 2.0), "");
  EXPECT_TRUE(g.on_probation()) << "one comparison is not enough";
  EXPECT_EQ(g.record(1.5, 2.0), "");
  EXPECT_FALSE(g.on_probation());
  EXPECT_EQ(g.promotions(), 1);
  std::vector<int> due;
  for (int i = 0; i < 5; ++i) due.push_back(g.due(true));
  EXPECT_EQ(due, (std::vector<int>{0, 0, 0, 1, 0})) << "live checks resume check_every windows after the promotion";
  EXPECT_EQ(g.record(2.1, 2.0), "worse_than_source");
  EXPECT_TRUE(g.on_probation()) << "a failure returns to probation";
  EXPECT_EQ(g.backoff_left(), 3);
  SourceGuard off({.check_every = 0});
  EXPECT_FALSE(off.on_probation());
  EXPECT_FALSE(off.due(true));
}

TEST(AdaptStability, BadGuardConfigIsError) {
  auto msg = [](CollapseGuardConfig c) {
    try {
      CollapseGuard g(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({.entropy_floor = -1}).find("entropy_floor"), std::string::npos);
  EXPECT_NE(msg({.max_expert_share = 2}).find("max_expert_share"), std::string::npos);
  EXPECT_NE(msg({.loss_margin = -0.1}).find("loss_margin"), std::string::npos);
  EXPECT_NE(msg({.loss_alpha = 0}).find("loss_alpha"), std::string::npos);
  auto source_msg = [](SourceGuardConfig c) {
    try {
      SourceGuard g(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(source_msg({.check_every = -2}).find("check_every"), std::string::npos);
  EXPECT_NE(source_msg({.margin = -1}).find("margin"), std::string::npos);
  EXPECT_NE(source_msg({.margin = INFINITY}).find("margin"), std::string::npos);
  EXPECT_NE(source_msg({.alpha = 0}).find("alpha"), std::string::npos);
  EXPECT_NE(source_msg({.backoff = -1}).find("backoff"), std::string::npos);
  EXPECT_NE(source_msg({.backoff = 9, .max_backoff = 8}).find("max_backoff"), std::string::npos);
  EXPECT_NE(source_msg({.promote_after = 0}).find("promote_after"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe::test
