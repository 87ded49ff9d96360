// export_tokenizer: a checkpoint directory gets the exact tokenizer.json it was trained with and a
// tokenizer_config.json for transformers; "bytes" and bad files write nothing.
#include "text/tokenizer_export.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../test_util.h"
#include "io/json.h"
#include "text/bpe_train.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

namespace fs = std::filesystem;

std::string trained(const test::TempDir& dir) {
  BpeTrainOptions o;
  o.vocab_size = 300;
  o.progress = false;
  const std::string path = dir.file("src.json");
  write_bpe_tokenizer(path, train_bpe({"the cat sat on the mat with the hat"}, {"t"}, o));
  return path;
}

TEST(TokenizerExport, CopiesTheFileAndWritesTheConfig) {
  test::TempDir dir;
  const std::string src = trained(dir), out = dir.file("model");
  fs::create_directories(out);
  export_tokenizer(src, out);
  EXPECT_EQ(read_text_file(out + "/tokenizer.json"), read_text_file(src));
  const Json cfg = read_json_file(out + "/tokenizer_config.json");
  EXPECT_EQ(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(cfg["eos_token"], "<|endoftext|>");
  EXPECT_EQ(model_tokenizer(out, "", 300)->eos_id().value_or(-1), 256);  // the directory now has its tokenizer
  export_tokenizer(out, out);  // its own file: left as it is
  EXPECT_EQ(read_text_file(out + "/tokenizer.json"), read_text_file(src));
}

TEST(TokenizerExport, BytesAndBadFilesWriteNothing) {
  test::TempDir dir;
  export_tokenizer("bytes", dir.path());
  EXPECT_TRUE(fs::is_empty(dir.path()));
  const std::string bad = dir.file("bad.json");
  std::ofstream(bad) << R"({"model": {"type": "Unigram"}})";
  const std::string out = dir.file("model");
  fs::create_directories(out);
  EXPECT_NE(test::error_of([&] { export_tokenizer(bad, out); }).find(bad), std::string::npos);
  EXPECT_TRUE(fs::is_empty(out));
}

}  // namespace
}  // namespace wattmoe
