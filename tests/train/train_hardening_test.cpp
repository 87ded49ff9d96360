// Training under bad input and interruptions (issue 21): a shard that throws reports to the caller instead of
// aborting the process; bad steps/batch/seq/lr are refused by name; an output folder is locked, never silently
// overwritten, and a resume checks it continues the same run.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../test_util.h"
#include "io/files.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "train/trainer.h"

namespace wattmoe {
namespace {

// A shard's exception used to escape its std::thread and std::terminate the process; now the first one (in shard
// order) reaches the caller once every shard has finished, and the runner stays usable.
TEST(TrainHardening, ShardExceptionReachesTheCaller) {
  const ModelConfig c = train_preset("tiny").model;
  std::unique_ptr<Runner> run = make_runner(c, {});
  std::vector<float> params(size_t(run->layout().total()));
  init_params(c, run->layout(), params.data(), 1);
  run->set_params(params.data());
  run->train_begin(AdamWConfig{}, 2);
  const int B = 4, S = 8;
  std::vector<int32_t> in(size_t(B * S), 7), tg(size_t(B * S), 9);
  for (int bad_shard : {1, 0}) {
    std::vector<int32_t> x = in;
    x[size_t(bad_shard * (B / 2) * S + 3)] = c.vocab_size + 5;  // an id outside the vocabulary in that shard only
    const std::string m = test::error_of([&] { run->train_micro_batch(x.data(), tg.data(), B, S, 1e-3, 0, 0, 1); });
    EXPECT_NE(m.find("outside the vocabulary"), std::string::npos) << m;
  }
  run->zero_grads();
  const TrainLosses l = run->train_micro_batch(in.data(), tg.data(), B, S, 1.0 / (B * S), 0.01, 0, 1);
  EXPECT_TRUE(std::isfinite(l.loss));
}

// A small run in DIR on a few kB of generated text: seconds.
TrainConfig small_run(const std::string& dir, const std::string& text_name = "text.txt", char first = 'a') {
  const std::string text = (std::filesystem::path(dir).parent_path() / text_name).string();
  std::string t;
  for (int i = 0; i < 20000; ++i) t += char(first + (i * 7 + i / 13) % 20);
  std::ofstream(text) << t;
  TrainConfig c = train_preset("tiny");
  c.train_file = c.val_file = text, c.out_dir = dir;
  c.steps = c.lr.total = 12, c.batch = 2, c.seq = 16, c.shards = 1;
  c.eval_every = c.ckpt_every = 4, c.log_every = 1, c.eval_tokens = 256;
  return c;
}

// `train --out` on a folder with a model of another run overwrote it.
TEST(TrainHardening, FolderWithAModelButNoCheckpointIsRefused) {
  const std::string dir = test::scratch_dir("foreign") + "/out";
  TrainConfig c = small_run(dir);
  c.stop_after = 4;
  train(c);  // a model and its checkpoint ...
  std::filesystem::remove_all(dir + "/checkpoint");  // ... now only a model, as `wattmoe data` or HF would leave
  const std::string before = read_text_file(dir + "/model.safetensors");
  const std::string m = test::error_of([&] { train(c); });
  EXPECT_NE(m.find("holds a model but no checkpoint of a training run"), std::string::npos) << m;
  EXPECT_EQ(read_text_file(dir + "/model.safetensors"), before);
}

// Two trainings on one --out interleaved silently.
TEST(TrainHardening, SecondTrainingOnTheSameOutIsRefused) {
  const std::string dir = test::scratch_dir("locked") + "/out";
  TrainConfig c = small_run(dir);
  std::filesystem::create_directories(dir);
  const FileLock other(dir + "/.lock", "held");  // what the first training holds while it runs
  const std::string m = test::error_of([&] { train(c); });
  EXPECT_NE(m.find("another `wattmoe train` is writing this --out"), std::string::npos) << m;
}

// A resume took another seed, data file or seq without a word.
TEST(TrainHardening, ResumeRefusesAnotherRun) {
  const std::string dir = test::scratch_dir("resume") + "/out";
  TrainConfig c = small_run(dir);
  c.stop_after = 4;
  train(c);
  TrainConfig seed = c, seq = c, data = small_run(dir, "other.txt", 'c');
  seed.seed = 99;
  seq.seq = 8;
  data.stop_after = 4;
  std::string m = test::error_of([&] { train(seed); });
  EXPECT_NE(m.find("this run differs from the checkpoint's (seed 1234 -> 99)"), std::string::npos) << m;
  m = test::error_of([&] { train(seq); });
  EXPECT_NE(m.find("seq 16 -> 8"), std::string::npos) << m;
  m = test::error_of([&] { train(data); });
  EXPECT_NE(m.find("train_sha256"), std::string::npos) << m;
  EXPECT_EQ(train(c).first_step, 4);  // the same run resumes
}

// metrics.jsonl repeated the steps after the last checkpoint when a killed run resumed.
TEST(TrainHardening, ResumeCutsTheMetricsBackToTheCheckpoint) {
  const std::string dir = test::scratch_dir("metrics") + "/out";
  TrainConfig c = small_run(dir);
  c.stop_after = 4;
  train(c);
  // What a SIGKILL after step 6 leaves: metrics of steps 5 and 6 and a cut-off line, a checkpoint at step 4.
  // (And a line whose step is not a number, which made the cut throw nlohmann's type_error.)
  std::ofstream(dir + "/metrics.jsonl", std::ios::app)
      << "{\"step\": 5, \"loss\": 1}\n{\"step\": 6, \"loss\": 1}\n{\"step\": \"6b\"}\n{\"st";
  c.stop_after = 0;
  train(c);
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<int> loss_steps;
  for (std::string line; std::getline(in, line);) {
    const Json j = Json::parse(line);
    if (j.contains("loss")) loss_steps.push_back(j.at("step").get<int>());
  }
  std::vector<int> want(12);
  for (int i = 0; i < 12; ++i) want[size_t(i)] = i + 1;
  EXPECT_EQ(loss_steps, want);
}

}  // namespace
}  // namespace wattmoe
