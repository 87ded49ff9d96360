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

TEST_F(BadTokenizer, MissingFileAndDirectory) {
  EXPECT_THROW(load_tokenizer((dir_ / "nope.json").string()), Error);
  EXPECT_THROW(load_tokenizer(dir_.string()), Error);  // a directory without tokenizer.json
}

}  // namespace
}  // namespace wattmoe
