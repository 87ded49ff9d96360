// Replay for prequential TTT (adapt/replay.h) and the per-group learning rates and decay of the adaptation optimizer:
// a batch holds the current window first, then stored (already revealed) windows newest first, never more than the
// capacity and never a window before it was pushed; inside TestTimeAdapter a window is scored with the weights from
// before any step on it, and a replayed step is exactly the step on the mean of the windows' NLL gradients; group
// multipliers scale exactly their group's update; the decay follows its formula.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "adapt/adapt_optimizer.h"
#include "adapt/adapter.h"
#include "adapt/replay.h"
#include "ops/token_objectives.h"
#include "adapt/window_score.h"
#include "adapt_test_util.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

constexpr int kS = 12;

std::vector<int32_t> window(int first, int S = kS) {  // S + 1 distinct, recognisable tokens
  std::vector<int32_t> w(size_t(S + 1));
  for (int i = 0; i <= S; ++i) w[size_t(i)] = first + i;
  return w;
}

TEST(AdaptReplay, BatchIsCurrentThenNewestRevealed) {
  ReplayBuffer buf(3);
  const auto cur = window(1000), w0 = window(0), w1 = window(100), w2 = window(200);
  ReplayBatch b = buf.batch(cur.data(), kS);
  ASSERT_EQ(b.B, 1) << "nothing revealed yet: the window alone";
  buf.push(w0.data(), kS);
  buf.push(w1.data(), kS);
  buf.push(w2.data(), kS);
  EXPECT_EQ(buf.size(), 2) << "capacity 3 keeps the 2 newest revealed windows";
  b = buf.batch(cur.data(), kS);
  ASSERT_EQ(b.B, 3);
  ASSERT_EQ(b.S, kS);
  ASSERT_EQ(b.inputs.size(), size_t(3 * kS));
  ASSERT_EQ(b.targets.size(), size_t(3 * kS));
  const int firsts[3] = {1000, 200, 100};  // current, then newest first; w0 was dropped
  for (int r = 0; r < 3; ++r)
    for (int s = 0; s < kS; ++s) {
      EXPECT_EQ(b.inputs[size_t(r * kS + s)], firsts[r] + s) << "row " << r << " pos " << s;
      EXPECT_EQ(b.targets[size_t(r * kS + s)], firsts[r] + s + 1) << "row " << r << " pos " << s;
    }
  // A window of another length never joins: the short last window of a stream trains alone.
  const auto shorter = window(300, kS - 3);
  EXPECT_EQ(buf.batch(shorter.data(), kS - 3).B, 1);
  buf.push(shorter.data(), kS - 3);
  b = buf.batch(cur.data(), kS);
  ASSERT_EQ(b.B, 2) << "the stored short window is skipped";
  EXPECT_EQ(b.inputs[size_t(kS)], 200);
  buf.clear();
  EXPECT_EQ(buf.batch(cur.data(), kS).B, 1);
}

TEST(AdaptReplay, CapacityOneStoresNothing) {
  ReplayBuffer buf(1);
  const auto w = window(0), cur = window(50);
  buf.push(w.data(), kS);
  EXPECT_EQ(buf.size(), 0);
  const ReplayBatch b = buf.batch(cur.data(), kS);
  ASSERT_EQ(b.B, 1);
  EXPECT_EQ(b.inputs.front(), 50);
  EXPECT_THROW(ReplayBuffer(0), Error);
  EXPECT_THROW(buf.push(w.data(), 0), Error);
}

AdapterConfig replay_config(int replay, AdaptOptimizerKind kind, double lr) {
  AdapterConfig c;
  c.groups = parse_param_groups("router,norms,lora");
  c.lora_rank = 2;
  c.optim.kind = kind, c.optim.lr = lr;
  c.replay = replay;
  return c;
}

// Each window's reported score is the score of the weights from before process() saw it; the batch grows to the
// capacity; the buffer holds only windows already processed.
TEST(AdaptReplay, WindowsAreScoredBeforeAnyStepOnThem) {
  const TinyModel m = tiny_model();
  const TokenStream s = motif_stream(8 * kS + 1, m.config.vocab_size, 7, 31);
  TestTimeAdapter a(m.config, m.params.data(), replay_config(3, AdaptOptimizerKind::AdamW, 3e-2));
  for (int t = 0; t < 8; ++t) {
    const int32_t* ids = s.tokens.data() + t * kS;
    const std::vector<float> before = a.params();
    const double expect = score_nats(a.model_config(), before.data(), ids, kS);
    const WindowOutcome w = a.process(ids, kS);
    ASSERT_TRUE(w.adapted);
    EXPECT_EQ(w.nats, expect) << "window " << t << " was scored with weights that had seen it";
    EXPECT_EQ(w.batch, std::min(t + 1, 3)) << "window " << t;
    EXPECT_EQ(a.replay().size(), std::min(t + 1, 2)) << "window " << t;
    if (t > 0) {
      EXPECT_NE(std::memcmp(before.data(), a.params().data(), sizeof(float) * before.size()), 0);
    }
  }
}

// One SGD step (no momentum, no clip) on a replayed batch [w1, w0] equals θ − lr·½(∇NLL(w1) + ∇NLL(w0)) on the
// trainable elements, and leaves every other element bitwise alone: the batch holds exactly those two windows with
// their own targets, weighted equally.
TEST(AdaptReplay, ReplayedStepIsTheMeanOfTheWindowGradients) {
  const TinyModel m = tiny_model(9);
  const std::vector<int32_t> w0 = random_ids(kS + 1, m.config.vocab_size, 41);
  const std::vector<int32_t> w1 = random_ids(kS + 1, m.config.vocab_size, 42);
  AdapterConfig c = replay_config(2, AdaptOptimizerKind::Sgd, 0.05);
  c.optim.momentum = 0, c.optim.clip = 0;
  TestTimeAdapter a(m.config, m.params.data(), c);
  a.process(w0.data(), kS);  // adapts on w0 alone, then stores it
  const std::vector<float> theta = a.params();
  const WindowOutcome out = a.process(w1.data(), kS);
  ASSERT_EQ(out.batch, 2);

  const Transformer<float> model(a.model_config());
  const int64_t V = m.config.vocab_size;
  std::vector<double> mean(theta.size(), 0.0);
  for (const auto* w : {&w0, &w1}) {
    Activations<float> acts;
    model.forward(theta.data(), w->data(), 1, kS, acts);
    std::vector<float> dlogits(size_t(kS * V), 0.f), grads(theta.size(), 0.f);
    next_token_nll<float>(acts.logits.data(), w->data() + 1, kS, V, 1.0, dlogits.data());
    model.backward(theta.data(), w->data(), dlogits.data(), acts, grads.data());
    for (size_t i = 0; i < grads.size(); ++i) mean[i] += 0.5 * double(grads[i]);
  }
  std::vector<uint8_t> trainable(theta.size(), 0);
  for (const ParamRange& r : a.trainable()) std::fill(trainable.begin() + r.offset, trainable.begin() + r.offset + r.numel, 1);
  // float forward/backward of the batch sums in another order than the two single-window passes: compare the step
  // against its own size (lr·|g|), at float precision times the reduction length.
  double max_step = 0, max_err = 0;
  for (size_t i = 0; i < theta.size(); ++i) {
    const double got = double(a.params()[i]) - double(theta[i]);
    if (!trainable[i]) {
      ASSERT_EQ(a.params()[i], theta[i]) << "frozen element " << i;
      continue;
    }
    const double want = -0.05 * mean[i];
    ASSERT_TRUE(std::isfinite(got)) << i;
    max_step = std::max(max_step, std::abs(want));
    max_err = std::max(max_err, std::abs(got - want));
  }
  ASSERT_GT(max_step, 1e-4) << "the step must be visible";
  EXPECT_LT(max_err, 1e-3 * max_step) << "max |Δ − want| " << max_err << " vs max step " << max_step;
  // The window-alone step differs: the replayed one really used w0.
  double max_alone_diff = 0;
  {
    Activations<float> acts;
    model.forward(theta.data(), w1.data(), 1, kS, acts);
    std::vector<float> dlogits(size_t(kS * V), 0.f), grads(theta.size(), 0.f);
    next_token_nll<float>(acts.logits.data(), w1.data() + 1, kS, V, 1.0, dlogits.data());
    model.backward(theta.data(), w1.data(), dlogits.data(), acts, grads.data());
    for (size_t i = 0; i < theta.size(); ++i)
      if (trainable[i])
        max_alone_diff = std::max(max_alone_diff, std::abs(double(a.params()[i]) - double(theta[i]) + 0.05 * grads[i]));
  }
  EXPECT_GT(max_alone_diff, 100 * max_err);
}

TEST(AdaptReplay, GroupMultipliersScaleExactlyTheirGroup) {
  const ModelConfig c = mixtral_config(2);
  const ModelConfig cl = [&] {
    ModelConfig x = c;
    x.lora_rank = 2;
    return x;
  }();
  const ParamLayout layout = ParamLayout::build(cl);
  const ParamGroups groups = parse_param_groups("router,norms,lora");
  std::vector<float> grads(size_t(layout.total()));
  Rng rng(4);
  for (float& x : grads) x = float(rng.normal());
  // One step with weight decay (the update is linear in lr at a given θ), three without (the decay would see the
  // already-scaled θ; the moments and momentum depend only on the gradients).
  for (const auto& cfg : {std::tuple{AdaptOptimizerKind::Sgd, 3, 0.0}, {AdaptOptimizerKind::AdamW, 1, 0.1},
                          {AdaptOptimizerKind::AdamW, 3, 0.0}}) {
    const auto [kind, steps, wd] = cfg;
    auto run = [&, kind = kind, steps = steps, wd = wd](double router, double norms, double lora) {
      AdaptOptimConfig oc;
      oc.kind = kind, oc.lr = 0.01, oc.weight_decay = wd, oc.clip = 0;
      oc.lr_router = router, oc.lr_norms = norms, oc.lr_lora = lora;
      AdaptOptimizer opt(layout, make_trainable_mask(groups, cl, layout), trainable_ranges(groups, cl, layout), oc,
                         group_lr_ranges(groups, cl, layout, oc));
      std::vector<float> p(size_t(layout.total()), 0.5f);
      for (int s = 0; s < steps; ++s) {
        std::vector<float> g = grads;
        opt.step(p.data(), g.data());
      }
      return p;
    };
    const std::vector<float> base = run(1, 1, 1), scaled = run(0.5, 1, 3);
    EXPECT_TRUE(group_lr_ranges(groups, cl, layout, AdaptOptimConfig{}).empty());
    for (const ParamSpec& s : layout.specs()) {
      const double m = s.kind == ParamKind::Router ? 0.5 : s.kind == ParamKind::Lora ? 3.0 : 1.0;
      for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
        const double d0 = double(base[size_t(i)]) - 0.5, d1 = double(scaled[size_t(i)]) - 0.5;
        if (!in_param_groups(groups, cl, s)) {
          ASSERT_EQ(d0, 0.0) << s.name;
          ASSERT_EQ(d1, 0.0) << s.name;
          continue;
        }
        // Each step's group delta is scaled, so the total displacement is m times as large, up to float rounding:
        // per step θ is rounded near 0.5 (ulp 6e-8) in both runs and the scaled difference carries m times one
        // rounding, so at most steps·(2 + m)·6e-8.
        ASSERT_NEAR(d1, m * d0, steps * (2 + m) * 6e-8) << s.name << " " << adapt_optimizer_name(kind);
        if (m != 1.0) {
          ASSERT_GT(std::abs(d0), 1e-4) << s.name << ": the group must move";
        }
      }
    }
  }
}

TEST(AdaptReplay, LrDecayFormulaAndBadConfig) {
  AdaptOptimConfig c;
  c.lr = 0.02;
  EXPECT_EQ(scheduled_lr(c, 1000), 0.02) << "no decay by default";
  c.lr_decay_steps = 10;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0), 0.02);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 30), 0.01);  // (1 + 3)^-½
  c.lr_min_ratio = 0.75;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 30), 0.015);
  auto bad = [](const std::function<void(AdaptOptimConfig&)>& edit, const std::string& needle) {
    AdaptOptimConfig c;
    edit(c);
    try {
      validate_adapt_optim(c);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "no error for " << needle;
  };
  bad([](AdaptOptimConfig& c) { c.lr_lora = 0; }, "lr_lora");
  bad([](AdaptOptimConfig& c) { c.lr_router = NAN; }, "lr_router");
  bad([](AdaptOptimConfig& c) { c.lr_norms = -1; }, "lr_norms");
  bad([](AdaptOptimConfig& c) { c.lr_decay_steps = -1; }, "lr_decay_steps");
  bad([](AdaptOptimConfig& c) { c.lr_min_ratio = 1.5; }, "lr_min_ratio");
  const TinyModel m = tiny_model();
  AdapterConfig ac;
  ac.replay = 0;
  EXPECT_THROW(TestTimeAdapter(m.config, m.params.data(), ac), Error);
}

}  // namespace
}  // namespace wattmoe::test
