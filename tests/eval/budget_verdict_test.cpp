// The rule "was the budget held" (eval/budget_verdict.h): per target segment, the second half's mean within ±2% and
// every 4-window block there within ±5%; too few windows are not judged; energy budgets divide by tokens.
#include <gtest/gtest.h>

#include "eval/budget_verdict.h"

namespace wattmoe::test {
namespace {

// n windows of 1 s at `power` W (100 tokens each) under `target`.
void add(std::vector<BudgetWindow>& w, int n, double power, double target) {
  for (int i = 0; i < n; ++i) w.push_back({power, 1.0, 100, target});
}

TEST(BudgetVerdict, HeldWhenTheSecondHalfMeanAndEveryBlockAreClose) {
  std::vector<BudgetWindow> w;
  add(w, 8, 400, 300);  // the first half may be far off (settling)
  add(w, 8, 303, 300);  // +1%
  const BudgetVerdict v = judge_budget(w, false);
  ASSERT_EQ(v.segments.size(), 1u);
  EXPECT_TRUE(v.held.value());
  EXPECT_EQ(v.segments[0].blocks, 2);
  EXPECT_NEAR(v.segments[0].mean_error, 0.01, 1e-12);
  EXPECT_EQ(v.line(), "budget 300 W held: mean 303.0 W (+1.0%), 4-window blocks within ±1.0%");
  EXPECT_EQ(v.json()["held"], true);
}

TEST(BudgetVerdict, NotHeldWhenTheMeanOrABlockIsOff) {
  std::vector<BudgetWindow> mean_off, block_off;
  add(mean_off, 16, 307, 300);  // +2.3%
  const BudgetVerdict a = judge_budget(mean_off, false);
  EXPECT_FALSE(a.held.value());
  EXPECT_NE(a.line().find("budget 300 W NOT held: mean 307.0 W (+2.3%)"), std::string::npos) << a.line();
  add(block_off, 8, 300, 300);
  add(block_off, 4, 320, 300);  // a block at +6.7% ...
  add(block_off, 4, 280, 300);  // ... and one at −6.7%: the mean is on target
  const BudgetVerdict b = judge_budget(block_off, false);
  EXPECT_NEAR(b.segments[0].mean_error, 0, 1e-12);
  EXPECT_FALSE(b.held.value());
  EXPECT_NEAR(b.segments[0].worst_block_error, 20.0 / 300, 1e-12);
}

TEST(BudgetVerdict, SegmentsFollowTheTargetAndShortOnesAreNotJudged) {
  std::vector<BudgetWindow> w;
  add(w, 8, 300, 300);
  add(w, 5, 250, 250);  // 5 windows: the second half (3) holds no block
  const BudgetVerdict v = judge_budget(w, false);
  ASSERT_EQ(v.segments.size(), 2u);
  EXPECT_EQ(v.segments[1].first_window, 8);
  EXPECT_TRUE(v.segments[0].held);
  EXPECT_FALSE(v.segments[1].judged);
  EXPECT_FALSE(v.held.has_value());
  EXPECT_TRUE(v.json()["held"].is_null());
  EXPECT_EQ(v.line().rfind("budget 300 -> 250 W not judged:", 0), 0u) << v.line();
  // A judged segment that failed decides, even beside one not judged.
  w[4].joules = w[5].joules = w[6].joules = w[7].joules = 400;
  EXPECT_FALSE(judge_budget(w, false).held.value());
  EXPECT_FALSE(judge_budget({}, false).held.has_value());
}

TEST(BudgetVerdict, EnergyBudgetsAreJoulesPerToken) {
  std::vector<BudgetWindow> w;
  add(w, 16, 1.0, 0.01);  // 1 J over 100 tokens: on target
  const BudgetVerdict v = judge_budget(w, true);
  EXPECT_TRUE(v.held.value());
  EXPECT_NEAR(v.segments[0].mean, 0.01, 1e-15);
  EXPECT_EQ(v.line(), "budget 0.01 J/token held: mean 0.01 J/token (+0.0%), 4-window blocks within ±0.0%");
}

}  // namespace
}  // namespace wattmoe::test
