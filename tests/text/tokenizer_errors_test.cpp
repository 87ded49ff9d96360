// A bad tokenizer.json is an Error that names the file and what is wrong, never a crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/json.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

const std::string kDir = WATTMOE_SOURCE_DIR "/tests/fixtures/tokenizers/";

class BadTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("wattmoe_tok_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes text as a tokenizer file and returns the message of the Error loading it gives.
  std::string error_of(const std::string& text) {
    std::string path = (dir_ / "tokenizer.json").string();
    std::ofstream(path) << text;
    try {
      load_tokenizer(path);
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(path), std::string::npos) << "message does not name the file: " << m;
      return m;
    }
    ADD_FAILURE() << "no Error for: " << text.substr(0, 200);
    return "";
  }
  Json good() { return read_json_file(kDir + "bytelevel_qwen2.json"); }
  std::filesystem::path dir_;
};

TEST_F(BadTokenizer, TruncatedJson) {
  std::string s = good().dump();
  EXPECT_NE(error_of(s.substr(0, s.size() / 2)).find("JSON"), std::string::npos);
  error_of("");
}

TEST_F(BadTokenizer, MissingModel) {
  Json j = good();
  j.erase("model");
  EXPECT_NE(error_of(j.dump()).find("model"), std::string::npos);
  error_of("[1, 2]");
}

TEST_F(BadTokenizer, UnknownModelType) {
  Json j = good();
  j["model"]["type"] = "Unigram";
  EXPECT_NE(error_of(j.dump()).find("Unigram"), std::string::npos);
}

TEST_F(BadTokenizer, MergeNamingAnUnknownToken) {
  Json j = good();
  j["model"]["merges"].push_back({"qqqzzz", "e"});
  EXPECT_NE(error_of(j.dump()).find("qqqzzz"), std::string::npos);
  j = good();
  j["model"]["merges"][0] = "onlyonetoken";
  EXPECT_NE(error_of(j.dump()).find("onlyonetoken"), std::string::npos);
}

TEST_F(BadTokenizer, WrongTypesAndUnsupportedComponents) {
  Json j = good();
  j["model"]["vocab"]["hello"] = "seven";
  error_of(j.dump());
  j = good();
  j["model"]["vocab"] = Json::array();
  error_of(j.dump());
  j = good();
  j["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(error_of(j.dump()).find("Lowercase"), std::string::npos);
  j = good();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  EXPECT_NE(error_of(j.dump()).find("not supported"), std::string::npos);
  j = good();
  j["decoder"] = {{"type", "WordPiece"}};
  error_of(j.dump());
  j = good();
  j["added_tokens"][0]["id"] = -3;
  error_of(j.dump());
  j = good();
  j["added_tokens"][0]["content"] = 5;
  error_of(j.dump());
  j = good();
  j["model"]["dropout"] = 0.1;
  error_of(j.dump());
  j = good();
  j["pre_tokenizer"] = "ByteLevel";
  error_of(j.dump());
}

// A huge id on a few tokens would size the dense id -> token table in gigabytes (found by the fuzzer): refused.
TEST_F(BadTokenizer, SparseIdsAreAnError) {
  Json j = good();
  j["model"]["vocab"]["zzz-sparse"] = 2000000000;
  EXPECT_NE(error_of(j.dump()).find("sparse"), std::string::npos);
  j = good();
  j["added_tokens"].push_back(Json{{"id", 2000000000}, {"content", "<|far|>"}, {"special", true}});
  EXPECT_NE(error_of(j.dump()).find("sparse"), std::string::npos);
}

TEST_F(BadTokenizer, MissingFileAndDirectory) {
  EXPECT_THROW(load_tokenizer((dir_ / "nope.json").string()), Error);
  EXPECT_THROW(load_tokenizer(dir_.string()), Error);  // a directory without tokenizer.json
}

// A Sequence of Sequences 10,000 deep overflowed the stack (SIGSEGV) while the components were built (100,000 deep:
// every stage): the JSON reader now refuses nesting deeper than 128 levels (serde_json's limit, so every file HF's
// tokenizers read still loads).
TEST_F(BadTokenizer, DeeplyNestedComponentsAreAnError) {
  struct Stage {
    const char *name, *list, *leaf;
  };
  const Stage stages[] = {
      {"normalizer", "normalizers", R"({"type":"NFC"})"},
      {"pre_tokenizer", "pretokenizers",
       R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false})"},
      {"decoder", "decoders", R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false})"}};
  for (const Stage& st : stages) {
    for (int depth : {10000, 100000}) {
      std::string nested;
      const std::string open = std::string(R"({"type":"Sequence",")") + st.list + "\":[";
      for (int i = 0; i < depth; ++i) nested += open;
      nested += st.leaf;
      for (int i = 0; i < depth; ++i) nested += "]}";
      Json j = good();
      j.erase(st.name);
      std::string text = j.dump();
      text.insert(1, "\"" + std::string(st.name) + "\":" + nested + ",");
      const std::string m = error_of(text);
      EXPECT_NE(m.find("nested more than 128 levels"), std::string::npos) << st.name << " " << depth << ": " << m;
    }
  }
  // 30 levels of Sequence (61 of JSON) still load.
  std::string nested = "{\"type\":\"NFC\"}";
  for (int i = 0; i < 30; ++i) nested = "{\"type\":\"Sequence\",\"normalizers\":[" + nested + "]}";
  Json j = good();
  j["normalizer"] = Json::parse(nested);
  const std::string path = (dir_ / "ok.json").string();
  std::ofstream(path) << j.dump();
  EXPECT_EQ(load_tokenizer(path)->decode(load_tokenizer(path)->encode("héllo")), "héllo");
}

}  // namespace
}  // namespace wattmoe
