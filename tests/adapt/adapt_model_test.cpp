// TestTimeAdapter over an AdaptModel from a factory (adapt/adapt_model.h), on the CPU: a wrapper around
// CpuAdaptModel that records the calls and checks the contract the GPU implementation (gpu/adapt_model_cuda.h)
// relies on — backward and loss follow a forward/score, backward names the weights of the last forward, and any
// weight vector whose contents changed since it was last passed is announced by weights_changed() first (the GPU
// caches the loaded weights by pointer). The results must equal the default adapter's bit for bit (same code path).
#include <gtest/gtest.h>

#include <map>

#include "adapt/adapter.h"
#include "adapt_test_util.h"

namespace wattmoe {
namespace {

struct Calls {
  int forwards = 0, scores = 0, losses = 0, backwards = 0, changes = 0;
};

class Recording final : public AdaptModel {
 public:
  Recording(const ModelConfig& c, const GradMask& mask, const std::vector<ParamRange>& ranges, Calls* calls)
      : cpu_(c, mask), ranges_(ranges), calls_(calls) {}
  const ModelConfig& config() const override { return cpu_.config(); }
  void forward(const float* w, const int32_t* ids, int B, int S, const RouterSelect<float>& sel) override {
    use(w), ++calls_->forwards;
    cpu_.forward(w, ids, B, S, sel);
  }
  WindowScore score(const float* w, const int32_t* ids, int S, const RouterSelect<float>& sel) override {
    use(w), ++calls_->scores;
    return cpu_.score(w, ids, S, sel);
  }
  double mean_nll(const int32_t* t) override {
    EXPECT_NE(last_, nullptr);
    return cpu_.mean_nll(t);
  }
  LossComponents loss(const int32_t* t, const ObjectiveWeights& w, const LayerCosts* c) override {
    EXPECT_NE(last_, nullptr) << "loss before any forward";
    ++calls_->losses;
    return cpu_.loss(t, w, c);
  }
  void backward(const float* w, const int32_t* ids, float* g) override {
    EXPECT_EQ(w, last_) << "backward with other weights than the last forward's";
    ++calls_->backwards;
    cpu_.backward(w, ids, g);
  }
  void weights_changed() override {
    ++calls_->changes;
    seen_.clear();
  }

 private:
  // A vector passed again without weights_changed() in between must hold what it held then (trainable ranges).
  void use(const float* w) {
    std::vector<float> now;
    for (const ParamRange& r : ranges_) now.insert(now.end(), w + r.offset, w + r.offset + r.numel);
    auto it = seen_.find(w);
    if (it != seen_.end()) EXPECT_EQ(it->second, now) << "weights changed without weights_changed()";
    seen_[w] = std::move(now);
    last_ = w;
  }
  CpuAdaptModel cpu_;
  std::vector<ParamRange> ranges_;
  Calls* calls_;
  std::map<const float*, std::vector<float>> seen_;
  const float* last_ = nullptr;
};

TEST(AdaptModel, FactoryModelMatchesDefaultAndKeepsTheContract) {
  const test::TinyModel m = test::tiny_model(3);
  AdapterConfig cfg;
  cfg.groups = {.router = true, .norms = true, .lora = true};
  cfg.lora_rank = 2;
  cfg.optim.kind = AdaptOptimizerKind::AdamW, cfg.optim.lr = 1e-2, cfg.optim.beta1 = 0;
  cfg.steps_per_window = 2, cfg.replay = 2;
  cfg.source_guard.check_every = 1;       // θ₀ scored beside θ
  cfg.teacher = true, cfg.teacher_momentum = 0.5, cfg.predict_with_teacher = true;  // θ_T scores
  cfg.triggers.adaptive = true;           // the before/after loss (mean_nll)
  Calls calls;
  const AdaptModelFactory make = [&calls](const ModelConfig& c, const float*, const GradMask& mask,
                                          const std::vector<ParamRange>& ranges) -> std::unique_ptr<AdaptModel> {
    return std::make_unique<Recording>(c, mask, ranges, &calls);
  };
  TestTimeAdapter ref(m.config, m.params.data(), cfg), via(m.config, m.params.data(), cfg, make);
  constexpr int S = 12, N = 7;
  const TokenStream s = test::motif_stream(S * N + 1, m.config.vocab_size, 5, 4);
  int steps = 0;
  for (int w = 0; w < N; ++w) {
    const WindowOutcome a = ref.process(s.tokens.data() + w * S, S), b = via.process(s.tokens.data() + w * S, S);
    EXPECT_EQ(a.nats, b.nats) << "window " << w;
    EXPECT_EQ(a.loss.total, b.loss.total) << "window " << w;
    EXPECT_EQ(a.reset, b.reset) << "window " << w;
    steps += b.steps;
  }
  EXPECT_EQ(ref.params(), via.params());
  ref.reset(), via.reset();
  EXPECT_EQ(via.params(), via.source());
  const WindowOutcome a = ref.process(s.tokens.data(), S), b = via.process(s.tokens.data(), S);
  EXPECT_EQ(a.nats, b.nats);
  steps += b.steps;
  EXPECT_GT(steps, 0);
  EXPECT_EQ(calls.backwards, steps);
  EXPECT_EQ(calls.losses, calls.backwards);
  EXPECT_GE(calls.changes, steps + 1);  // one per step, one for the reset
  EXPECT_GT(calls.scores, N);           // the source guard scored beside θ
}

}  // namespace
}  // namespace wattmoe
