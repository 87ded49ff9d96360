// The byte-level BPE trainer (text/bpe_train.h) on corpora small enough to work out the merges by hand, the
// tokenizer.json it writes read back by load_tokenizer, and the errors for bad input. Parity with Hugging Face
// `tokenizers` on a trained tokenizer: tests/python/test_tokenizer_train.py.
#include "text/bpe_train.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "../test_util.h"
#include "text/tokenizer.h"

namespace wattmoe {
namespace {

BpeTrainOptions quiet(int vocab, int min_frequency = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab;
  o.min_frequency = min_frequency;
  o.progress = false;
  return o;
}

std::vector<std::string> merged_strings(const BpeTrainResult& r) {
  std::vector<std::string> out;
  for (const auto& m : r.merges) out.push_back(r.vocab[m.left] + "+" + r.vocab[m.right]);
  return out;
}

// "hug hug hug pug pun" -> words "hug" x1, " hug" x2, " pug" x1, " pun" x1. Pair counts: u g 4, h u 3, then
// h ug 3; then " h" and " p" both 2: the tie goes to the smaller pair (' ', 'p'=112) < (' ', hug=258); then " hug"
// 2; every pair left occurs once, below --min-frequency 2.
TEST(BpeTrain, LearnsTheMergesWorkedOutByHand) {
  BpeTrainResult r = train_bpe({"hug hug hug pug pun"}, {"t"}, quiet(1000));
  EXPECT_EQ(merged_strings(r), (std::vector<std::string>{"u+g", "h+ug", " +p", " +hug"}));
  ASSERT_EQ(r.vocab.size(), 261u);
  EXPECT_EQ(r.vocab[256], "<|endoftext|>");
  EXPECT_EQ(r.vocab[257], "ug");
  EXPECT_EQ(r.vocab[260], " hug");
  EXPECT_EQ(r.words, 5u);
  EXPECT_EQ(r.unique_words, 4u);
  // --vocab caps it; --min-frequency 1 lets the once-seen pairs merge as well.
  EXPECT_EQ(merged_strings(train_bpe({"hug hug hug pug pun"}, {"t"}, quiet(259))),
            (std::vector<std::string>{"u+g", "h+ug"}));
  EXPECT_GT(train_bpe({"hug hug hug pug pun"}, {"t"}, quiet(1000, 1)).merges.size(), 4u);
}

TEST(BpeTrain, ResultDependsOnlyOnTheWordCounts) {
  const std::string a = "the cat sat on the mat; the rat ate the hat.\n", b = "that hat, that cat, those rats!\n";
  BpeTrainResult r1 = train_bpe({a, b}, {"a", "b"}, quiet(300, 1));
  BpeTrainResult r2 = train_bpe({b, a}, {"b", "a"}, quiet(300, 1));
  EXPECT_EQ(merged_strings(r1), merged_strings(r2));
  EXPECT_EQ(bpe_tokenizer_json(r1), bpe_tokenizer_json(r2));
}

TEST(BpeTrain, SpecialTokensAreCutOutOfTheTrainingText) {
  BpeTrainResult r = train_bpe({"<|endoftext|><|endoftext|><|endoftext|>"}, {"t"}, quiet(1000, 1));
  EXPECT_EQ(r.words, 0u);
  EXPECT_TRUE(r.merges.empty());
  BpeTrainOptions o = quiet(1000, 1);
  o.special_tokens = {"<pad>", "</s>"};
  r = train_bpe({"a</s>b a</s>b"}, {"t"}, o);  // words "a", "b", " a", "b": the one pair is ' ' 'a' ("</s>" is cut)
  EXPECT_EQ(r.vocab[256], "<pad>");
  EXPECT_EQ(r.vocab[257], "</s>");
  EXPECT_EQ(merged_strings(r), (std::vector<std::string>{" +a"}));
}

TEST(BpeTrain, WrittenTokenizerLoadsEncodesAndRoundTrips) {
  test::TempDir dir;
  const std::string text =
      "In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.\n"
      "Grüße aus Köln — ελληνικά, 日本語, emoji 🙂 and tabs\tand  double  spaces.\n";
  std::string corpus;
  for (int i = 0; i < 20; ++i) corpus += text;
  BpeTrainResult r = train_bpe({corpus}, {"t"}, quiet(400));
  const std::string path = dir.file("tokenizer.json");
  write_bpe_tokenizer(path, r);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto tok = load_tokenizer(path);
  EXPECT_EQ(tok->vocab_size(), int32_t(r.vocab.size()));
  EXPECT_EQ(tok->token_to_id("<|endoftext|>").value_or(-1), 256);
  EXPECT_EQ(tok->eos_id().value_or(-1), 256);
  const std::string held_out = "And God said, Let there be light: and there was light.<|endoftext|>Köln 🙂\n\n  x";
  std::vector<int32_t> ids = tok->encode(held_out);
  EXPECT_LT(ids.size(), held_out.size());  // merges apply to unseen text
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 256), 1);
  EXPECT_EQ(tok->decode(ids), held_out);
  // The hand-worked merges, encoded: " hug" and " p"+"ug" are single tokens.
  write_bpe_tokenizer(path, train_bpe({"hug hug hug pug pun"}, {"t"}, quiet(1000)));
  EXPECT_EQ(load_tokenizer(path)->encode("hug pug hug"), (std::vector<int32_t>{258, 259, 257, 260}));
}

TEST(BpeTrain, BadInputIsAnErrorNamingIt) {
  EXPECT_NE(test::error_of([] { train_bpe({"ok", "bad \xff byte"}, {"a.txt", "b.txt"}, quiet(300)); })
                .find("b.txt: not valid UTF-8 (bad byte 0xFF at offset 4)"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { train_bpe({"x"}, {"a"}, quiet(200)); }).find("--vocab 200 is smaller"),
            std::string::npos);
  BpeTrainOptions o = quiet(300);
  o.special_tokens = {"a"};  // the token of byte 'a'
  EXPECT_NE(test::error_of([&] { train_bpe({"x"}, {"a"}, o); }).find("special token 'a'"), std::string::npos);
  EXPECT_NE(test::error_of([] { train_bpe_files({"/nonexistent/train.txt"}, quiet(300)); }).find("/nonexistent/train.txt"),
            std::string::npos);
  // A write that cannot happen leaves nothing behind and names the file.
  test::TempDir dir;
  const std::string bad = dir.file("missing_dir/tokenizer.json");
  EXPECT_NE(test::error_of([&] { write_bpe_tokenizer(bad, train_bpe({"x"}, {"a"}, quiet(300))); }).find(bad),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing_dir")));
}

// A model paired with a tokenizer whose vocabulary it cannot embed: one check in the library (model_tokenizer),
// used by every command and the Python package, naming the tokenizer file.
TEST(BpeTrain, TokenizerLargerThanTheModelIsRefused) {
  test::TempDir dir;
  const std::string path = dir.file("tokenizer.json");
  write_bpe_tokenizer(path, train_bpe({"hug hug hug pug pun"}, {"t"}, quiet(1000)));  // vocab 261
  const std::string m = test::error_of([&] { model_tokenizer(dir.path(), "", 256); });
  EXPECT_NE(m.find(path), std::string::npos) << m;
  EXPECT_NE(m.find("tokenizer vocabulary (261) is larger than the model's (256)"), std::string::npos) << m;
  EXPECT_EQ(model_tokenizer(dir.path(), "", 261)->vocab_size(), 261);
  EXPECT_EQ(model_tokenizer(dir.path(), path, 300)->vocab_size(), 261);  // a padded embedding is fine
}

}  // namespace
}  // namespace wattmoe
