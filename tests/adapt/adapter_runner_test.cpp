// TestTimeAdapter over its Runner (model/runner.h): the runner holds one weight set, and the adapter swaps θ, θ₀ and
// the teacher's weights in only when they differ from what it holds (as a GPU runner needs: only the trainable ranges
// cross the bus). The contract this checks: every reported score equals a fresh runner's score with the weights the
// adapter meant (θ before the window, θ₀ on probation or for the source check, the teacher's when it predicts), with
// replay, several steps, the adaptive trigger's extra forwards and resets in the mix — and the swaps are fewer than the
// forwards (the cache works).
#include <gtest/gtest.h>

#include <cmath>

#include "adapt/adapter.h"
#include "adapt_test_util.h"

namespace wattmoe {
namespace {

// Passes every call to a CPU runner, counting forwards and weight swaps.
class CountingRunner final : public Runner {
 public:
  CountingRunner(const ModelConfig& c, int* forwards, int* swaps) : in_(make_runner(c, {})), f_(forwards), s_(swaps) {}
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
  int *f_, *s_;
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

}  // namespace
}  // namespace wattmoe
