// The energy benchmark's workloads on the CPU runner (eval/policy_workload.h): prefill windows cycle through the
// text and score every row; teacher-forced decoding with cache restarts scores exactly what prefill windows of the
// cache's length score; the tally counts experts and the analytic work (eval/step_work.h).
#include <gtest/gtest.h>

#include <cmath>

#include "../adapt/adapt_test_util.h"
#include "../test_util.h"
#include "eval/evaluate.h"
#include "eval/policy_points.h"
#include "eval/policy_workload.h"
#include "eval/step_work.h"

namespace wattmoe::test {
namespace {

TEST(PolicyWorkload, Modes) {
  EXPECT_EQ(parse_mode("prefill", 64, 128, 128).tokens_per_step(), 64 * 128);
  const WorkloadMode d = parse_mode("decode8", 64, 128, 128);
  EXPECT_TRUE(d.decode);
  EXPECT_EQ(d.streams, 8);
  EXPECT_EQ(d.name(), "decode8");
  EXPECT_EQ(parse_mode("decode:64", 1, 1, 1).streams, 64);
  EXPECT_EQ(parse_modes("prefill,decode1,decode8", 4, 8, 8).size(), 3u);
  EXPECT_NE(error_of([] { parse_mode("decod8", 1, 1, 1); }).find("unknown mode"), std::string::npos);
  EXPECT_NE(error_of([] { parse_mode("decode0", 1, 1, 1); }).find("decode<N>"), std::string::npos);
  EXPECT_NE(error_of([] { parse_modes("prefill,prefill", 1, 1, 1); }).find("twice"), std::string::npos);
}

TEST(PolicyWorkload, PrefillScoresEveryRowAndCycles) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> run = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(3 * 8 * 2 + 5, m.config.vocab_size, 7);  // 3 batches of 2 × 8 fit
  const StepWorkModel work(m.config);
  Workload w(s, parse_mode("prefill", 2, 8, 8), &work);
  w.begin(*run);
  WorkTally t;
  for (int i = 0; i < 3; ++i) w.step(*run, t);
  EXPECT_EQ(t.tokens, 48);
  EXPECT_EQ(t.steps, 3);
  // The same windows as `eval` over the first 48 targets (disjoint windows of 8).
  const EvalResult e = evaluate(*run, s, {8, 2, 48, 0});
  EXPECT_EQ(e.tokens, 48);
  EXPECT_NEAR(t.nats, e.nats, 1e-9 * e.nats);
  EXPECT_DOUBLE_EQ(t.experts_per_token(), 2.0);
  EXPECT_EQ(t.moe_layer_steps, 3 * m.config.num_layers);
  EXPECT_GT(t.active_experts_per_layer_step(), 1.0);
  EXPECT_NEAR(t.bits_per_byte(1.0), t.nats / std::log(2.0) / 48, 1e-12);
  // The fourth batch wraps to the start: the first batch again.
  WorkTally first, again;
  w.begin(*run);
  w.step(*run, first);
  w.begin(*run);
  for (int i = 0; i < 3; ++i) w.step(*run, again);
  WorkTally fourth;
  w.step(*run, fourth);
  EXPECT_DOUBLE_EQ(fourth.nats, first.nats);
  EXPECT_GT(t.work.expert_j, 0);
  EXPECT_GT(t.work.dense_j, 0);
}

TEST(PolicyWorkload, DecodeWithCacheRestartsScoresLikePrefillWindows) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> run = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(200, m.config.vocab_size, 9);
  Workload d(s, parse_mode("decode1", 1, 1, 16), nullptr);  // one stream from position 0, cache of 16
  d.begin(*run);
  WorkTally t;
  for (int i = 0; i < 48; ++i) d.step(*run, t);  // three cache fills
  EXPECT_EQ(t.tokens, 48);
  const EvalResult e = evaluate(*run, s, {16, 1, 48, 0});
  EXPECT_NEAR(t.nats, e.nats, 1e-4 * e.nats);
  EXPECT_DOUBLE_EQ(t.experts_per_token(), 2.0);
  EXPECT_DOUBLE_EQ(t.active_experts_per_layer_step(), 2.0);  // one token: k experts per layer-step
}

// The serving streams: slots<N> (one forward_slots per step) and slots<N>-serial (N forward_slot calls) score the
// same tokens bit for bit on the CPU; one slot scores like one lockstep stream (the same cache restarts).
TEST(PolicyWorkload, SlotStreamsScoreLikeTheirSerialAndLockstepTwins) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> run = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(300, m.config.vocab_size, 13);
  auto tally = [&](const char* mode, int steps) {
    Workload w(s, parse_mode(mode, 1, 1, 16), nullptr);
    w.begin(*run);
    WorkTally t;
    for (int i = 0; i < steps; ++i) w.step(*run, t);
    return t;
  };
  const WorkTally batched = tally("slots3", 40), serial = tally("slots3-serial", 40);
  EXPECT_EQ(batched.tokens, 120);
  EXPECT_NEAR(batched.nats, serial.nats, 1e-12 * serial.nats);  // equal logits; the nats summed in another order
  EXPECT_EQ(batched.pairs, serial.pairs);
  EXPECT_EQ(batched.steps, 40);
  EXPECT_EQ(serial.steps, 120);
  EXPECT_EQ(tally("slots1", 48).nats, tally("decode1", 48).nats);
  EXPECT_EQ(parse_mode("slots8-serial", 1, 1, 1).name(), "slots8-serial");
  EXPECT_EQ(parse_mode("slots:8", 1, 1, 1).name(), "slots8");
  EXPECT_NE(error_of([] { parse_mode("slots8-parallel", 1, 1, 1); }).find("slots<N>-serial"), std::string::npos);
}

TEST(PolicyWorkload, RoutingReachesTheTally) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> run = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(100, m.config.vocab_size, 11);
  const StepWorkModel work(m.config);
  WorkTally two, one;
  for (auto [spec, tally] : {std::pair{"topk", &two}, std::pair{"topk k_max=1", &one}}) {
    run->set_routing(point_spec(parse_point(spec), m.config, {}, 16));
    Workload w(s, parse_mode("prefill", 2, 8, 8), &work);
    w.begin(*run);
    w.step(*run, *tally);
  }
  EXPECT_DOUBLE_EQ(one.experts_per_token(), 1.0);
  EXPECT_DOUBLE_EQ(two.experts_per_token(), 2.0);
  EXPECT_NEAR(one.work.expert_flops, two.work.expert_flops / 2, 1e-9 * two.work.expert_flops);
  EXPECT_DOUBLE_EQ(one.work.dense_j, two.work.dense_j);
  EXPECT_LT(one.work.expert_j, two.work.expert_j);
}

}  // namespace
}  // namespace wattmoe::test
