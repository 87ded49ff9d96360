// core/expert_costs.h: the one expert-cost type's checks and its per-token price a_e / n + b_e.
#include "core/expert_costs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../test_util.h"

namespace wattmoe {
namespace {

using test::error_of;

TEST(ExpertCosts, PerTokenCostIsFixedOverTokensPlusPerPair) {
  const ExpertCosts c{{4.f, 0.f, 1.5f}, {1.f, 2.f, 0.25f}};
  const std::vector<double> one = per_token_cost(c, 1), two = per_token_cost(c, 2);
  ASSERT_EQ(one.size(), 3u);
  EXPECT_EQ(one[0], 5.0);
  EXPECT_EQ(two[0], 3.0);
  EXPECT_EQ(two[1], 2.0);
  EXPECT_EQ(two[2], 0.75 + 0.25);
  EXPECT_NE(error_of([&] { per_token_cost(c, 0); }).find("n = 0"), std::string::npos);
  EXPECT_NE(error_of([&] { per_token_cost(ExpertCosts{{1.f}, {1.f, 2.f}}, 1); }).find("expected equal"),
            std::string::npos);
}

TEST(ExpertCosts, ValidationNamesTheVectorAndEntry) {
  const ExpertCosts ok{{1.f, 2.f}, {0.f, 0.5f}};
  validate_costs(ok, 2, true);
  validate_costs(ExpertCosts{}, 2, false);  // unpriced policies may pass none
  EXPECT_NE(error_of([] { validate_costs(ExpertCosts{}, 2, true); }).find("fixed"), std::string::npos);
  EXPECT_NE(error_of([&] { validate_costs(ok, 3, true); }).find("E = 3"), std::string::npos);
  ExpertCosts bad = ok;
  bad.per_token[1] = -1.f;
  EXPECT_NE(error_of([&] { validate_costs(bad, 2, true); }).find("per_token[1]"), std::string::npos);
  bad = ok;
  bad.fixed[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { validate_costs(bad, 2, false); }).find("fixed[0]"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
