// TestTimeAdapter over its Runner (model/runner.h): the runner holds one weight set, and the adapter swaps θ, θ₀ and
// the teacher's weights in only when they differ from what it holds (as a GPU runner needs: only the trainable ranges
// cross the bus). The contract this checks: every reported score equals a fresh runner's score with the weights the
// adapter meant (θ before the window, θ₀ on probation or for the source check, the teacher's when it predicts), with
// replay, several steps, the adaptive trigger's extra forwards and resets in the mix — and the swaps are fewer than the
// forwards (the cache works).
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "adapt/adapter.h"
#include "adapt_test_util.h"

namespace wattmoe {
namespace {

// Passes every call to a CPU runner, counting forwards and weight swaps. With `device` it also plays a GPU runner's
// part (model/runner.h): its own optimizer step (plain SGD on the ranges here: the adapter's switching is under test,
// not the step's rule) and two weight-set slots, so the adapter keeps θ and θ₀ in the runner and never swaps them
// through set_param_ranges; slot_loads counts load_param_ranges.
class CountingRunner final : public Runner {
 public:
  CountingRunner(const ModelConfig& c, int* forwards, int* swaps, int* slot_loads = nullptr)
      : in_(make_runner(c, {})), f_(forwards), s_(swaps), loads_(slot_loads) {}
  bool adapt_optimizer_begin(const std::vector<ParamRange>& ranges, const std::vector<ScaledRange>&,
                             const AdaptOptimConfig&) override {
    ranges_ = ranges;
    return loads_ != nullptr;
  }
  double adapt_optimizer_step(double lr) override {
    std::vector<float> p(size_t(layout().total())), g(p.size(), 0.f);
    in_->get_params(p.data());
    in_->take_grads(g.data(), ranges_);
    double norm = 0;
    for (const ParamRange& r : ranges_)
      for (size_t i = size_t(r.offset); i < size_t(r.offset + r.numel); ++i)
        norm += double(g[i]) * g[i], p[i] -= float(lr) * g[i];
    in_->set_param_ranges(p.data(), ranges_);
    return std::sqrt(norm);
  }
  void adapt_optimizer_reset() override {}
  void keep_param_ranges(int slot, const std::vector<ParamRange>& r) override {
    kept_[size_t(slot)].assign(size_t(layout().total()), 0.f);
    in_->get_param_ranges(kept_[size_t(slot)].data(), r);
  }
  void load_param_ranges(int slot, const std::vector<ParamRange>& r) override {
    ASSERT_FALSE(kept_[size_t(slot)].empty()) << "slot " << slot << " loaded before it was kept";
    ++*loads_;
    in_->set_param_ranges(kept_[size_t(slot)].data(), r);
  }
  const ModelConfig& config() const override { return in_->config(); }
  const ParamLayout& layout() const override { return in_->layout(); }
  RunnerInfo info() const override { return in_->info(); }
  void set_params(const float* h) override { in_->set_params(h); }
  void set_param_ranges(const float* h, const std::vector<ParamRange>& r) override {
    ++*s_;
    in_->set_param_ranges(h, r);
  }
  void get_params(float* h) const override { in_->get_params(h); }
  void set_routing(const RoutingSpec& s) override { in_->set_routing(s); }
  void set_routing_observer(RoutingObserver o) override { in_->set_routing_observer(std::move(o)); }
  void forward(const int32_t* ids, int B, int S) override {
    ++*f_;
    in_->forward(ids, B, S);
  }
  void reset_cache(int64_t c, int b) override { in_->reset_cache(c, b); }
  void forward_cached(const int32_t* ids, int S) override { in_->forward_cached(ids, S); }
  void reset_slots(int n, int64_t c) override { in_->reset_slots(n, c); }
  void clear_slot(int s) override { in_->clear_slot(s); }
  void forward_slot(int s, const int32_t* ids, int S) override { in_->forward_slot(s, ids, S); }
  void forward_slots(const int32_t* s, const int32_t* ids, int n) override { in_->forward_slots(s, ids, n); }
  int64_t tokens() const override { return in_->tokens(); }
  double nll(const int32_t* t) override { return in_->nll(t); }
  double mean_entropy() override { return in_->mean_entropy(); }
  const float* logits() override { return in_->logits(); }
  bool logits_on_host() const override { return in_->logits_on_host(); }
  const Routing& routing(int l) override { return in_->routing(l); }
  RouterViews<float> router_views() override { return in_->router_views(); }
  double next_token_loss(const int32_t* t, double w, bool g) override { return in_->next_token_loss(t, w, g); }
  void set_dlogits(const float* h) override { in_->set_dlogits(h); }
  void zero_dlogits() override { in_->zero_dlogits(); }
  void backward(const GradMask* m) override { in_->backward(m); }
  void zero_grads() override { in_->zero_grads(); }
  void take_grads(float* h, const std::vector<ParamRange>& r) override { in_->take_grads(h, r); }
  void train_begin(const AdamWConfig& a, int s) override { in_->train_begin(a, s); }
  TrainLosses train_micro_batch(const int32_t* in, const int32_t* tg, int B, int S, double sc, double lb, double z,
                                int accum) override {
    return in_->train_micro_batch(in, tg, B, S, sc, lb, z, accum);
  }
  double clip_gradients(double m) override { return in_->clip_gradients(m); }
  void optimizer_step(double lr) override { in_->optimizer_step(lr); }
  void save_optimizer(const std::string& p) const override { in_->save_optimizer(p); }
  void load_optimizer(const std::string& p) override { in_->load_optimizer(p); }

 private:
  std::unique_ptr<Runner> in_;
  int *f_, *s_, *loads_;
  std::vector<ParamRange> ranges_;
  std::array<std::vector<float>, 2> kept_;
};

TEST(AdapterRunner, EveryScoreUsesTheWeightsTheAdapterMeans) {
  const test::TinyModel m = test::tiny_model(3);
  for (const bool teacher : {false, true}) {
    AdapterConfig cfg;
    cfg.groups = {.router = true, .norms = true, .lora = true};
    cfg.lora_rank = 2;
    cfg.optim.kind = AdaptOptimizerKind::AdamW, cfg.optim.lr = 3e-2, cfg.optim.beta1 = 0;
    cfg.steps_per_window = 2, cfg.replay = 2;
    cfg.source_guard.check_every = 1;  // θ₀ scored beside θ every window
    cfg.triggers.adaptive = true;      // before/after forwards
    cfg.teacher = teacher, cfg.teacher_momentum = 0.5, cfg.predict_with_teacher = teacher;
    int forwards = 0, swaps = 0;
    TestTimeAdapter a(m.config, m.params.data(), cfg, [&](const ModelConfig& c) {
      return std::make_unique<CountingRunner>(c, &forwards, &swaps);
    });
    constexpr int S = 12, N = 9;
    const TokenStream s = test::motif_stream(S * N + 1, m.config.vocab_size, 5, 4);
    const ModelConfig& mc = a.model_config();
    int adapted = 0;
    for (int w = 0; w < N; ++w) {
      const int32_t* ids = s.tokens.data() + w * S;
      const std::vector<float> theta = a.params(), source = a.source();
      const std::vector<float> shown = teacher ? std::vector<float>(a.teacher_params(), a.teacher_params() + theta.size())
                                               : theta;
      const WindowOutcome o = a.process(ids, S);
      const std::vector<float>& reported = o.probation ? source : shown;
      EXPECT_EQ(o.nats, test::score_nats(mc, reported.data(), ids, S)) << "window " << w << " teacher " << teacher;
      if (!std::isnan(o.source_nats) && o.probation) {
        EXPECT_EQ(o.tested_nats, test::score_nats(mc, shown.data(), ids, S)) << "window " << w;
      } else if (!std::isnan(o.source_nats)) {
        EXPECT_EQ(o.source_nats, test::score_nats(mc, source.data(), ids, S)) << "window " << w;
      }
      adapted += o.adapted ? 1 : 0;
      if (w == 5) a.reset();
    }
    EXPECT_GT(adapted, N / 2);
    EXPECT_LT(swaps, forwards) << "the runner's weights are swapped only when they differ";
  }
}

// The same contract where the runner steps θ on its device and keeps weight sets there: every score still uses the
// weights the adapter means — across the source check's switches every window, params() read between windows (θ
// brought out of its slot and put back), and a reset (θ = θ₀ again) — and no weight set crosses set_param_ranges.
TEST(AdapterRunner, DeviceStepSwitchesThetaAndSourceInTheRunner) {
  const test::TinyModel m = test::tiny_model(3);
  AdapterConfig cfg;
  cfg.groups = {.router = true, .norms = true, .lora = true};
  cfg.lora_rank = 2;
  cfg.optim.lr = 3e-2;
  cfg.steps_per_window = 2;
  cfg.source_guard.check_every = 1;
  int forwards = 0, swaps = 0, loads = 0;
  TestTimeAdapter a(m.config, m.params.data(), cfg, [&](const ModelConfig& c) {
    return std::make_unique<CountingRunner>(c, &forwards, &swaps, &loads);
  });
  constexpr int S = 12, N = 9;
  const TokenStream s = test::motif_stream(S * N + 1, m.config.vocab_size, 5, 4);
  const ModelConfig& mc = a.model_config();
  int adapted = 0, compared = 0;
  for (int w = 0; w < N; ++w) {
    const int32_t* ids = s.tokens.data() + w * S;
    const std::vector<float> theta = a.params(), source = a.source();
    const WindowOutcome o = a.process(ids, S);
    EXPECT_EQ(o.nats, test::score_nats(mc, (o.probation ? source : theta).data(), ids, S)) << "window " << w;
    if (!std::isnan(o.source_nats)) {
      ++compared;
      if (o.probation) EXPECT_EQ(o.tested_nats, test::score_nats(mc, theta.data(), ids, S)) << "window " << w;
      else EXPECT_EQ(o.source_nats, test::score_nats(mc, source.data(), ids, S)) << "window " << w;
    }
    adapted += o.adapted ? 1 : 0;
    if (w == 5) {
      a.reset();
      EXPECT_EQ(a.params(), a.source());
    }
  }
  EXPECT_GT(adapted, N / 2);
  EXPECT_GT(compared, N / 2);  // every adapted window (not the first, nor the one after the reset)
  EXPECT_EQ(swaps, 0) << "θ and θ₀ went through set_param_ranges";
  EXPECT_GT(loads, N) << "the source check's switches are slot loads";
}

}  // namespace
}  // namespace wattmoe
