// The training presets: each builds a valid model config and a schedule that fits its purpose. The medium preset
// is only built and checked here (training it takes minutes on a GPU: scripts/device/train_medium.sh).
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/params.h"
#include "train/trainer.h"

namespace wattmoe {
namespace {

TEST(Presets, EveryPresetValidates) {
  for (const char* name : {"tiny", "small", "medium"}) {
    const TrainConfig t = train_preset(name);
    EXPECT_EQ(t.preset, name);
    EXPECT_NO_THROW(t.model.validate(name)) << name;
    EXPECT_EQ(ParamLayout::build(t.model).total(), t.model.num_parameters()) << name;
    EXPECT_EQ(t.lr.total, t.steps) << name;
    EXPECT_LT(t.lr.warmup, t.steps / 5) << name;
    EXPECT_EQ(t.adamw.lr, t.lr.peak) << name;
  }
}

TEST(Presets, MediumIsTrainVsTorchsMediumShape) {
  const TrainConfig t = train_preset("medium");
  const ModelConfig& m = t.model;
  // bench/train_vs_torch.py SHAPES["medium"]: (512, 8, 8, 4, 64, 8, 2, 1024, 32, 256)
  EXPECT_EQ(m.hidden_size, 512);
  EXPECT_EQ(m.num_layers, 8);
  EXPECT_EQ(m.num_heads, 8);
  EXPECT_EQ(m.num_kv_heads, 4);
  EXPECT_EQ(m.head_dim, 64);
  EXPECT_EQ(m.num_experts, 8);
  EXPECT_EQ(m.top_k, 2);
  EXPECT_EQ(m.moe_intermediate_size, 1024);
  EXPECT_EQ(m.vocab_size, 256);
  EXPECT_EQ(t.batch, 32);
  EXPECT_EQ(t.seq, 256);
  // ~107M parameters (bench/train_vs_torch.py's PyTorch count of the same config), ~30M active per token.
  EXPECT_GT(m.num_parameters(), 100'000'000);
  EXPECT_LT(m.num_parameters(), 115'000'000);
  EXPECT_GT(m.active_parameters(), 25'000'000);
  EXPECT_LT(m.active_parameters(), 35'000'000);
  // About 4 minutes of steps at the ~110k tokens/s measured for this shape on the GPU (3.5 to 4.5 minutes).
  const double seconds = double(t.steps) * t.batch * t.seq / 110e3;
  EXPECT_GT(seconds, 210);
  EXPECT_LT(seconds, 270);
  EXPECT_GT(t.lr.peak, 3e-4);
  EXPECT_LE(t.lr.peak, 2e-3);
  EXPECT_GT(t.eval_every, 0);
  EXPECT_LE(t.eval_every, t.steps / 4);
  EXPECT_GT(t.ckpt_every, 0);
  EXPECT_LE(t.ckpt_every, t.steps);
}

TEST(Presets, UnknownPresetNamesTheKnownOnes) {
  try {
    train_preset("huge");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("medium"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("huge"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wattmoe
