// The evaluation window protocol (eval/evaluate.h): disjoint windows by default, sliding windows with stride < seq,
// every target scored exactly once, checked against a target-by-target reference forward.
#include <gtest/gtest.h>

#include <algorithm>

#include "../adapt/adapt_test_util.h"
#include "core/error.h"
#include "eval/evaluate.h"
#include "ops/loss.h"

namespace wattmoe::test {
namespace {

// Σ −log p(target j) for j = 1 … n−1, each predicted from its own forward over the context the protocol gives it:
// from the start of the first window (starts at multiples of stride) whose seq targets include j.
double reference_nats(const TinyModel& m, const TokenStream& s, int seq, int stride) {
  Transformer<float> model(m.config);
  Activations<float> acts;
  double nats = 0;
  const int64_t n = int64_t(s.tokens.size());
  for (int64_t j = 1; j < n; ++j) {
    const int64_t first = j <= seq ? 0 : (j - seq + stride - 1) / stride * stride;
    const int len = int(j - first);
    model.forward(m.params.data(), s.tokens.data() + first, 1, len, acts);
    const int32_t target = s.tokens[size_t(j)];
    nats += ops::nll_loss<float>(acts.logits.data() + size_t(len - 1) * m.config.vocab_size, &target, 1,
                                 m.config.vocab_size, nullptr, 0);
  }
  return nats;
}

TEST(EvalWindows, DisjointWindowsAreTheDefaultStride) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(5 * 16 + 7, m.config.vocab_size, 3);
  const EvalResult a = evaluate(*model, s, {16, 2});
  const EvalResult b = evaluate(*model, s, {16, 2, 0, 16});
  EXPECT_EQ(a.nats, b.nats);
  EXPECT_EQ(a.tokens, int64_t(s.tokens.size()) - 1);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.expert_counts, b.expert_counts);
  EXPECT_NEAR(a.nats, reference_nats(m, s, 16, 16), 1e-5 * a.nats);
}

TEST(EvalWindows, SlidingWindowsScoreEveryTargetOnceWithItsContext) {
  const TinyModel m = tiny_model(9);
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  for (const int n : {61, 64, 70}) {  // last window partial, exact, and a stream shorter than two windows' reach
    const TokenStream s = random_stream(n, m.config.vocab_size, uint64_t(n));
    for (const int stride : {1, 5, 7, 16}) {
      const EvalResult r = evaluate(*model, s, {16, 3, 0, stride});
      EXPECT_EQ(r.tokens, n - 1) << "n " << n << " stride " << stride;
      EXPECT_EQ(r.bytes, n - 1);
      EXPECT_NEAR(r.nats, reference_nats(m, s, 16, stride), 1e-5 * r.nats) << "n " << n << " stride " << stride;
    }
  }
}

TEST(EvalWindows, MaxTokensAndShortStreams) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(100, m.config.vocab_size, 4);
  const EvalResult r = evaluate(*model, s, {16, 4, 40, 4});
  EXPECT_EQ(r.tokens, 40);
  TokenStream first41 = s;
  first41.tokens.resize(41);
  first41.bytes = 41;
  EXPECT_NEAR(r.nats, reference_nats(m, first41, 16, 4), 1e-5 * r.nats);
  TokenStream one = s;
  one.tokens.resize(1);
  EXPECT_EQ(evaluate(*model, one, {16, 4, 0, 4}).tokens, 0);
}

TEST(EvalWindows, StrideOutsideOneToSeqIsAnError) {
  const TinyModel m = tiny_model();
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(40, m.config.vocab_size, 4);
  EXPECT_THROW(evaluate(*model, s, {16, 4, 0, 17}), Error);
  EXPECT_THROW(evaluate(*model, s, {16, 4, 0, -1}), Error);
}

}  // namespace
}  // namespace wattmoe::test
