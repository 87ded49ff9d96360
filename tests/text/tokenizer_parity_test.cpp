// Parity with Hugging Face `tokenizers`: the ids and decodes in tests/fixtures/tokenizers/cases.json were made by
// scripts/make_tokenizer_fixtures.py with that package; every one must come out the same.
#include <gtest/gtest.h>

#include "io/json.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

const std::string kDir = WATTMOE_SOURCE_DIR "/tests/fixtures/tokenizers/";

Json cases() { return read_json_file(kDir + "cases.json"); }

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, EncodeMatchesTokenizers) {
  Json c = cases();
  const Json& texts = c["texts"];
  const Json& exp = c["tokenizers"][GetParam()];
  auto tok = load_tokenizer(kDir + GetParam());
  EXPECT_EQ(tok->vocab_size(), exp["vocab_size"].get<int32_t>());
  ASSERT_EQ(texts.size(), exp["encode"].size());
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string text = texts[i].get<std::string>();
    const Json& e = exp["encode"][i];
    auto want = e["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok->encode(text);
    EXPECT_EQ(got, want) << GetParam() << " case " << i << ": \"" << text << "\"";
    EXPECT_EQ(tok->decode(want), e["decoded"].get<std::string>()) << GetParam() << " case " << i;
    EXPECT_EQ(tok->decode(want, true), e.value("decoded_skip_special", e["decoded"].get<std::string>()))
        << GetParam() << " case " << i;
  }
}

TEST_P(Parity, DecodeOfRandomIdsMatchesTokenizers) {
  Json c = cases();
  auto tok = load_tokenizer(kDir + GetParam());
  for (const Json& d : c["tokenizers"][GetParam()]["decode"]) {
    auto ids = d["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids), d["decoded"].get<std::string>()) << GetParam() << " ids " << d["ids"].dump();
    EXPECT_EQ(tok->decode(ids, true), d.value("decoded_skip_special", d["decoded"].get<std::string>())) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Values("bytelevel_qwen2.json", "bytelevel_llama3.json", "bytelevel_gpt2.json",
                                           "metaspace_legacy.json", "metaspace_first.json"),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.find('.'));
                           return n;
                         });

}  // namespace
}  // namespace wattmoe
