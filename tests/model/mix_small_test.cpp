// The shipped models/mix-small (the small preset trained on the mixed corpus's prose domains with a BPE tokenizer of
// 8192 tokens; results/cpu-mix-small/): it loads from its BF16 safetensors, its tokenizer.json round-trips a fixed
// sample exactly and compresses it (fewer tokens than bytes / 2), and its bits per byte on that sample are finite and
// below kBound, a bound the same shape with the trainer's random initialisation does not meet (checked here too).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../adapt/adapt_test_util.h"
#include "../test_util.h"
#include "eval/evaluate.h"
#include "model/checkpoint.h"
#include "text/token_stream.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace wattmoe::test {
namespace {

// Plain English prose and documentation-like text written for this test (not taken from the corpus).
const char* const kSample =
    "It was late in the evening when the letter finally arrived, and the whole family gathered in the small "
    "drawing room to hear it read aloud. Nobody could say with any certainty who had sent it, but everyone had an "
    "opinion, and most of those opinions were expressed at once.\n"
    "\"I am quite sure it is from your aunt,\" said her mother, \"for nobody else would write so much and say so "
    "little.\"\n\n"
    "The function returns a new list containing the items of the iterable in sorted order. If the optional key "
    "argument is given, it must be a function of one argument that is used to extract a comparison key from each "
    "element. The default value is None, which compares the elements directly.\n\n"
    "To configure the device, write the desired value to the file in the sysfs directory of the driver. The kernel "
    "checks the value and returns an error if it is out of range; the current setting can be read back from the "
    "same file at any time.\n";

// Bits per byte a trained small model stays under on kSample (the shipped one: 1.58; see the test's log line), and that
// the untrained one does not reach (2.97: a model that has not learned the text spreads ~8192 tokens about evenly).
constexpr double kBound = 2.3;

double sample_bpb(const ModelConfig& c, const float* params, const TokenStream& s) {
  const std::unique_ptr<Runner> r = cpu_runner(c, params);
  return evaluate(*r, s, {128, 4}).bits_per_byte();
}

TEST(MixSmall, LoadsRoundTripsAndScoresBelowTheBound) {
  const std::string dir = source_path("models/mix-small");
  const ModelWeights<float> m = load_model<float>(dir);
  EXPECT_EQ(m.config.vocab_size, 8192);
  EXPECT_EQ(m.stored_dtypes, std::vector<std::string>{"BF16"});
  const std::unique_ptr<Tokenizer> tok = model_tokenizer(dir, "", m.config.vocab_size);
  ASSERT_EQ(tok->vocab_size(), 8192) << tok->describe();
  const std::string text = kSample;
  const std::vector<int32_t> ids = tok->encode(text);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(ids.size() * 2, text.size()) << "the BPE tokenizer should compress English text";

  const TokenStream s = make_token_stream(text, *tok, 2, "mix_small_test sample");
  const double trained = sample_bpb(m.config, m.params.data(), s);
  std::vector<float> fresh(m.params.size());
  init_params(m.config, m.layout, fresh.data(), 1234);
  const double untrained = sample_bpb(m.config, fresh.data(), s);
  std::printf("mix-small on the sample: %.4f bits/byte (untrained: %.4f; bound %.2f)\n", trained, untrained, kBound);
  EXPECT_TRUE(std::isfinite(trained));
  EXPECT_LT(trained, kBound);
  EXPECT_GT(untrained, kBound);
}

}  // namespace
}  // namespace wattmoe::test
