// energy/expert_work.h: the one expert FLOP/byte formula, pinned against its written form, and the analytic cost
// model and the simulated GPU pricing exactly that work.
#include "energy/expert_work.h"

#include <gtest/gtest.h>

#include "energy/cost_analytic.h"

namespace wattmoe {
namespace {

TEST(ExpertWork, IsTheSwiGluFormula) {
  const ExpertShape s{4096, 14336, 2, 2, 3};  // Mixtral, bf16
  for (double n : {0.0, 1.0, 37.5, 4096.0}) {
    const ExpertWork w = expert_work(s, n);
    EXPECT_EQ(w.flops, 6.0 * 4096 * 14336 * n) << n;
    EXPECT_EQ(w.bytes, 3.0 * 4096 * 14336 * 2 + (2.0 * 4096 + 2.0 * 14336) * 2 * n) << n;
    EXPECT_EQ(w.flops, expert_flops_per_token(s) * n);
    EXPECT_EQ(w.bytes, expert_weight_bytes(s) + expert_act_bytes_per_token(s) * n);
  }
  ExpertShape fp8 = s;
  fp8.weight_bytes = 1, fp8.matrices = 2;  // a two-matrix expert with fp8 weights
  EXPECT_EQ(expert_weight_bytes(fp8), 2.0 * 4096 * 14336);
  EXPECT_EQ(expert_flops_per_token(fp8), 4.0 * 4096 * 14336);
}

TEST(ExpertWork, TheAnalyticCostModelPricesExactlyIt) {
  const ExpertShape s{1024, 2816, 4, 4, 3};
  const AnalyticCostModel m = AnalyticCostModel::uniform(1, 2, s, HardwareCoeffs{});
  for (double n : {1.0, 8.0, 300.0}) {
    EXPECT_EQ(m.flops(0, 1, n), expert_work(s, n).flops) << n;
    EXPECT_EQ(m.bytes(0, 1, n), expert_work(s, n).bytes) << n;
  }
}

}  // namespace
}  // namespace wattmoe
