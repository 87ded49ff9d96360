// The analytic step work (eval/step_work.h): expert work follows the routed counts (weights once per active expert
// and step), the dense rest does not depend on routing, and top-1 against top-2 predicts the savings the
// architecture notes describe: about half the expert bytes at one decode stream, little at 64 streams.
#include <gtest/gtest.h>

#include "eval/step_work.h"

namespace wattmoe {
namespace {

ModelConfig mixtral(int layers = 1) {
  ModelConfig c;
  c.hidden_size = 4096, c.num_layers = layers, c.num_heads = 32, c.num_kv_heads = 8, c.head_dim = 128;
  c.num_experts = 8, c.top_k = 2, c.intermediate_size = c.moe_intermediate_size = 14336, c.vocab_size = 256;
  return c;
}

TEST(StepWork, ExpertsFollowTheCounts) {
  const StepWorkModel w(mixtral());
  const StepWork none = w.experts(0, {0, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(none.expert_j, 0);
  const StepWork one = w.experts(0, {1, 0, 0, 0, 0, 0, 0, 0}), two = w.experts(0, {1, 1, 0, 0, 0, 0, 0, 0});
  const double weights = 3.0 * 4096 * 14336 * 2;  // one expert's bf16 weights
  EXPECT_NEAR(one.expert_bytes, weights + (2 * 4096 + 2 * 14336) * 2, 1);
  EXPECT_NEAR(two.expert_bytes, 2 * one.expert_bytes, 1);
  EXPECT_DOUBLE_EQ(one.expert_flops, 6.0 * 4096 * 14336);
  EXPECT_NEAR(two.expert_j, 2 * one.expert_j, 1e-12);
  // Two tokens on one expert read its weights once.
  const StepWork shared = w.experts(0, {2, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_LT(shared.expert_bytes, 1.01 * one.expert_bytes);
  EXPECT_NEAR(shared.expert_flops, 2 * one.expert_flops, 1);
  EXPECT_ANY_THROW(w.experts(0, {1, 1}));
}

TEST(StepWork, DenseWork) {
  const ModelConfig c = mixtral(2);
  const StepWorkModel w(c);
  const StepWork pre = w.dense(4, 16, 16), dec = w.dense(4, 1, 16);
  EXPECT_EQ(pre.expert_j, 0);
  EXPECT_GT(pre.dense_j, dec.dense_j);
  EXPECT_GT(pre.dense_flops, 16 * dec.dense_flops * 0.5);
  // Decoding at a longer context reads more of the cache.
  EXPECT_GT(w.dense(4, 1, 128).dense_bytes, dec.dense_bytes);
  EXPECT_ANY_THROW(w.dense(1, 4, 2));
  StepWork sum = pre;
  sum += dec;
  EXPECT_DOUBLE_EQ(sum.dense_j, pre.dense_j + dec.dense_j);
  EXPECT_DOUBLE_EQ(sum.total_j(), pre.total_j() + dec.total_j());
}

TEST(StepWork, TopOneAgainstTopTwo) {
  const StepWorkModel w(mixtral());
  // One decode stream: top-2 activates 2 experts, top-1 one; the experts dominate the step.
  const double top2 = w.experts(0, {1, 1, 0, 0, 0, 0, 0, 0}).expert_j, top1 = w.experts(0, {1, 0, 0, 0, 0, 0, 0, 0}).expert_j;
  const double dense = w.dense(1, 1, 64).dense_j;
  const double saving1 = 1 - (top1 + dense) / (top2 + dense);
  EXPECT_GT(saving1, 0.4);
  EXPECT_LT(saving1, 0.5);
  // 64 streams: every expert is active either way (16 vs 8 tokens each): far less to save.
  const double t2 = w.experts(0, {16, 16, 16, 16, 16, 16, 16, 16}).expert_j, t1 = w.experts(0, {8, 8, 8, 8, 8, 8, 8, 8}).expert_j;
  const double d64 = w.dense(64, 1, 64).dense_j;
  const double saving64 = 1 - (t1 + d64) / (t2 + d64);
  EXPECT_GT(saving64, 0);
  EXPECT_LT(saving64, 0.5 * saving1);
}

}  // namespace
}  // namespace wattmoe
