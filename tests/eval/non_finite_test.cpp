// Finite weights large enough to overflow the activations used to give "bits_per_byte": null (NaN in JSON) and an
// empty or arbitrary generation with exit 0. A non-finite loss or logits row is now an Error naming where it arose.
#include <gtest/gtest.h>

#include "../adapt/adapt_test_util.h"
#include "../test_util.h"
#include "adapt/stream.h"
#include "core/error.h"
#include "eval/evaluate.h"
#include "eval/sample.h"

namespace wattmoe::test {
namespace {

// The tiny model with every lm_head weight at 3e38 (finite, as a checkpoint may hold): its logits overflow.
TinyModel overflowing_model() {
  TinyModel m = tiny_model();
  const ParamLayout layout = ParamLayout::build(m.config);
  const ParamSpec* head = layout.find("lm_head.weight");
  EXPECT_NE(head, nullptr);
  std::fill(m.params.begin() + head->offset, m.params.begin() + head->offset + head->numel, 3e38f);
  return m;
}

TEST(NonFinite, EvaluateReportsOverflowInsteadOfNull) {
  const TinyModel m = overflowing_model();
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(100, m.config.vocab_size, 3);
  const std::string e = error_of([&] { evaluate(*model, s, {16, 2}); });
  EXPECT_NE(e.find("not finite"), std::string::npos) << e;
  EXPECT_NE(e.find("window at token 0"), std::string::npos) << e;
}

TEST(NonFinite, StreamRunReportsOverflow) {
  const TinyModel m = overflowing_model();
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  const TokenStream s = random_stream(100, m.config.vocab_size, 3);
  const std::string e = error_of([&] { run_stream(*model, s, StreamOptions{16, 0, 2}); });
  EXPECT_NE(e.find("not finite"), std::string::npos) << e;
}

TEST(NonFinite, SamplingRefusesNonFiniteLogits) {
  Rng rng(1);
  const float ok[3] = {0.f, 1.f, 2.f}, nan[3] = {0.f, NAN, 2.f}, inf[3] = {0.f, INFINITY, 2.f};
  EXPECT_EQ(sample_token(ok, 3, 0, 1, rng), 2);
  for (const float* bad : {nan, inf})
    for (double temperature : {0.0, 0.8}) {
      const std::string e = error_of([&] { sample_token(bad, 3, temperature, 0.95, rng); });
      EXPECT_NE(e.find("logits are not finite"), std::string::npos) << e;
    }
}

}  // namespace
}  // namespace wattmoe::test
