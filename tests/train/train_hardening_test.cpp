// Training under bad input and interruptions (issue 21): a shard that throws reports to the caller instead of
// aborting the process; bad steps/batch/seq/lr are refused by name; an output folder is locked, never silently
// overwritten, and a resume checks it continues the same run.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../test_util.h"
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

}  // namespace
}  // namespace wattmoe
