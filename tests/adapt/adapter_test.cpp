// TestTimeAdapter on tiny random models: adapting lowers a window's NLL, frozen weights never move, reset restores
// θ₀ bitwise, episodic mode scores like no adaptation, a forced collapse trips the reset guard, the teacher scores
// windows, the passes a window costs are counted, and bad configuration values are clear Errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "adapt/adapter.h"
#include "adapt/stream.h"
#include "adapt/window_score.h"
#include "adapt_test_util.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

constexpr int kS = 16;

double window_nll(const TestTimeAdapter& a, const std::vector<int32_t>& ids, const float* params = nullptr) {
  return score_nats(a.model_config(), params ? params : a.params().data(), ids.data(), kS) / kS;
}

bool bitwise_equal(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, sizeof(float) * size_t(n)) == 0; }

AdapterConfig lora_config(AdaptOptimizerKind kind, double lr) {
  AdapterConfig c;
  c.groups = parse_param_groups("router,norms,lora");
  c.lora_rank = 2;
  c.optim.kind = kind;
  c.optim.lr = lr;
  return c;
}

TEST(AdaptAdapter, RepeatedAdaptationLowersWindowNll) {
  const TinyModel m = tiny_model();
  const std::vector<int32_t> ids = random_ids(kS + 1, m.config.vocab_size, 21);
  for (auto [kind, lr] : {std::pair{AdaptOptimizerKind::Sgd, 0.1}, std::pair{AdaptOptimizerKind::AdamW, 1e-2}}) {
    TestTimeAdapter a(m.config, m.params.data(), lora_config(kind, lr));
    const double start = window_nll(a, ids);
    double prev = start;
    int rises = 0;
    for (int step = 0; step < 30; ++step) {
      const LossComponents lc = a.adapt_on(ids.data(), kS);
      EXPECT_TRUE(std::isfinite(lc.nll));
      const double now = window_nll(a, ids);
      rises += now > prev ? 1 : 0;
      prev = now;
    }
    EXPECT_LT(prev, start - 0.2) << adapt_optimizer_name(kind) << ": NLL " << start << " → " << prev;
    EXPECT_LE(rises, 3) << adapt_optimizer_name(kind);
  }
}

TEST(AdaptAdapter, FreshLoraScoresLikeTheBaseModel) {
  const TinyModel m = tiny_model();
  const std::vector<int32_t> ids = random_ids(kS + 1, m.config.vocab_size, 22);
  TestTimeAdapter a(m.config, m.params.data(), lora_config(AdaptOptimizerKind::Sgd, 0.1));
  EXPECT_EQ(a.model_config().lora_rank, 2);
  EXPECT_EQ(score_nats(m.config, m.params.data(), ids.data(), kS), window_nll(a, ids) * kS);
}

TEST(AdaptAdapter, FrozenParametersStayBitwiseIdentical) {
  const TinyModel m = tiny_model();
  AdapterConfig c = lora_config(AdaptOptimizerKind::AdamW, 1e-2);
  c.objective.entropy = 0.5, c.objective.router_entropy = 0.1, c.objective.load_balance = 0.01, c.objective.anchor = 0.1;
  c.steps_per_window = 2;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(6 * kS + 1, m.config.vocab_size, 23);
  const StreamResult r = run_stream(a, s, {kS, 0, 2});
  EXPECT_EQ(r.adapted_windows, 6);
  std::vector<uint8_t> trainable(a.params().size(), 0);
  for (const ParamRange& g : a.trainable()) std::fill(trainable.begin() + g.offset, trainable.begin() + g.offset + g.numel, 1);
  int64_t moved = 0;
  for (size_t i = 0; i < trainable.size(); ++i) {
    if (trainable[i]) {
      moved += a.params()[i] != a.source()[i];
    } else {
      ASSERT_EQ(std::memcmp(&a.params()[i], &a.source()[i], sizeof(float)), 0) << "frozen element " << i << " moved";
    }
  }
  EXPECT_GT(moved, count_elements(a.trainable()) / 2) << "most trainable elements should have moved";
}

TEST(AdaptAdapter, ResetRestoresSourceBitwiseAndFreshState) {
  const TinyModel m = tiny_model();
  const AdapterConfig c = lora_config(AdaptOptimizerKind::AdamW, 1e-2);
  const std::vector<int32_t> w1 = random_ids(kS + 1, m.config.vocab_size, 24), w2 = random_ids(kS + 1, m.config.vocab_size, 25);
  TestTimeAdapter a(m.config, m.params.data(), c);
  const int64_t n = int64_t(a.params().size());
  const std::vector<float> initial = a.params();
  a.process(w1.data(), kS);
  a.process(w2.data(), kS);
  EXPECT_TRUE(a.adapted());
  EXPECT_FALSE(bitwise_equal(a.params().data(), a.source().data(), n));
  a.reset();
  EXPECT_FALSE(a.adapted());
  EXPECT_TRUE(bitwise_equal(a.params().data(), a.source().data(), n));
  EXPECT_TRUE(bitwise_equal(a.params().data(), initial.data(), n));
  // After reset, the optimizer state is fresh too: one window gives bitwise what a new adapter gives.
  TestTimeAdapter fresh(m.config, m.params.data(), c);
  const WindowOutcome ra = a.process(w2.data(), kS), rf = fresh.process(w2.data(), kS);
  EXPECT_EQ(ra.nats, rf.nats);
  EXPECT_TRUE(bitwise_equal(a.params().data(), fresh.params().data(), n));
}

TEST(AdaptAdapter, EpisodicModeEqualsUnadaptedScores) {
  const TinyModel m = tiny_model();
  AdapterConfig c = lora_config(AdaptOptimizerKind::Sgd, 0.5);
  c.episodic = true;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(5 * kS + 7, m.config.vocab_size, 26);
  std::vector<std::string> resets;
  const StreamResult ep = run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) {
    resets.push_back(w.reset);
  });
  const StreamResult none = run_stream(*cpu_runner(a.model_config(), a.source().data()), s, {kS, 0, 2});
  EXPECT_EQ(ep.nats, none.nats);
  EXPECT_EQ(ep.counts, none.counts);
  EXPECT_EQ(ep.adapted_windows, ep.windows);
  for (const std::string& r : resets) EXPECT_EQ(r, "episodic");
  EXPECT_TRUE(bitwise_equal(a.params().data(), a.source().data(), int64_t(a.params().size())));
}

TEST(AdaptAdapter, ForcedCollapseTriggersResetGuard) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.groups = parse_param_groups("norms");
  c.objective.nll = 0, c.objective.entropy = 1, c.objective.entropy_gate = 100.0;  // every token kept
  c.optim.lr = 200, c.optim.momentum = 0, c.optim.clip = 0;
  c.guard.entropy_floor = 1.0;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(8 * kS + 1, m.config.vocab_size, 27);
  std::vector<WindowOutcome> ws;
  run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) { ws.push_back(w); });
  ASSERT_GT(ws[0].entropy, 2.0) << "the unadapted model is far from collapse";
  int collapses = 0;
  for (size_t i = 1; i < ws.size(); ++i) {
    if (ws[i].reset.empty()) continue;
    ++collapses;
    EXPECT_EQ(ws[i].reset, "entropy");
    EXPECT_LT(ws[i].entropy, 1.0);
    EXPECT_TRUE(ws[i - 1].adapted);
  }
  EXPECT_GE(collapses, 1);
  EXPECT_EQ(a.resets(), collapses);
}

TEST(AdaptAdapter, ExpertShareGuard) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.groups = parse_param_groups("router");
  c.objective.nll = 0, c.objective.energy = 1;
  c.expert_costs = per_pair_costs({1, 50, 50, 50});  // expert 0 is cheap: the energy objective herds tokens onto it
  c.optim.lr = 5e3, c.optim.momentum = 0, c.optim.clip = 0;
  c.guard.max_expert_share = 0.45;  // top-2 of 4: one expert holds at most half the pairs
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(6 * kS + 1, m.config.vocab_size, 28);
  std::vector<std::string> resets;
  run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) { resets.push_back(w.reset); });
  EXPECT_NE(std::find(resets.begin(), resets.end(), "expert_share"), resets.end());
}

TEST(AdaptAdapter, EnergyObjectiveLowersExpectedCost) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.groups = parse_param_groups("router");
  c.objective.nll = 0, c.objective.energy = 1;
  c.expert_costs = per_pair_costs({1, 2, 3, 4});
  c.optim.lr = 5.0;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const std::vector<int32_t> ids = random_ids(kS + 1, m.config.vocab_size, 29);
  const double first = a.adapt_on(ids.data(), kS).energy;
  double last = first;
  for (int i = 0; i < 10; ++i) last = a.adapt_on(ids.data(), kS).energy;
  EXPECT_LT(last, first - 0.05);
}

TEST(AdaptAdapter, TeacherScoresWindowsWithEmaWeights) {
  const TinyModel m = tiny_model();
  AdapterConfig c = lora_config(AdaptOptimizerKind::Sgd, 0.2);
  c.teacher = true, c.teacher_momentum = 0.5, c.predict_with_teacher = true;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const std::vector<int32_t> w1 = random_ids(kS + 1, m.config.vocab_size, 30), w2 = random_ids(kS + 1, m.config.vocab_size, 31);
  const WindowOutcome r1 = a.process(w1.data(), kS);
  EXPECT_EQ(r1.nats / kS, window_nll(a, w1, a.source().data())) << "the teacher starts at θ₀";
  // θ_T = 0.5·θ₀ + 0.5·θ₁ on the trainable elements.
  for (const ParamRange& g : a.trainable())
    for (int64_t i = g.offset; i < g.offset + g.numel; ++i)
      ASSERT_EQ(a.teacher_params()[i], 0.5f * a.source()[size_t(i)] + 0.5f * a.params()[size_t(i)]);
  const std::vector<float> teacher(a.teacher_params(), a.teacher_params() + a.params().size());
  const WindowOutcome r2 = a.process(w2.data(), kS);
  EXPECT_EQ(r2.nats / kS, window_nll(a, w2, teacher.data()));
  EXPECT_NE(r2.nats / kS, window_nll(a, w2, a.source().data()));
}

TEST(AdaptAdapter, StepsPerWindowAndAdaptiveGain) {
  const TinyModel m = tiny_model();
  AdapterConfig c = lora_config(AdaptOptimizerKind::Sgd, 0.1);
  c.steps_per_window = 3;
  c.triggers = {.adaptive = true, .adaptive_max_interval = 4, .adaptive_min_gain = 1.0};  // never pays: interval grows
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(12 * kS + 1, m.config.vocab_size, 32);
  std::vector<WindowOutcome> ws;
  run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) { ws.push_back(w); });
  std::vector<int> at;
  for (size_t i = 0; i < ws.size(); ++i) {
    if (!ws[i].adapted) continue;
    at.push_back(int(i));
    EXPECT_EQ(ws[i].steps, 3);
    EXPECT_EQ(ws[i].trigger, "adaptive");
    EXPECT_TRUE(std::isfinite(ws[i].gain));
    EXPECT_GT(ws[i].gain, 0.0) << "three steps on the window lower its loss";
    EXPECT_GT(ws[i].adapt_seconds, 0.0);
  }
  EXPECT_EQ(at, (std::vector<int>{0, 2, 6, 10}));
  EXPECT_EQ(a.trigger_interval(), 4);
}

TEST(AdaptAdapter, TimedPhasesSplitTheAdaptationTime) {
  const TinyModel m = tiny_model();
  for (const bool timed : {false, true}) {
    AdapterConfig c = lora_config(AdaptOptimizerKind::AdamW, 1e-2);
    c.replay = 2;                        // a fresh forward over the batch every step
    c.source_guard.check_every = 1;      // and the source guard's scoring
    c.time_phases = timed;
    TestTimeAdapter a(m.config, m.params.data(), c);
    const StreamResult r = run_stream(a, random_stream(6 * kS + 1, m.config.vocab_size, 34), {kS, 0, 2});
    const AdaptPhases& p = r.adapt_phases;
    const double sum = p.weights + p.forward + p.loss + p.backward + p.grads + p.optimizer + p.guard + p.other;
    if (!timed) {
      EXPECT_EQ(sum, 0.0) << "phases are timed only when asked";
      continue;
    }
    EXPECT_EQ(r.adapted_windows, 6);
    for (double v : {p.weights, p.forward, p.loss, p.backward, p.grads, p.optimizer, p.guard, p.other}) EXPECT_GE(v, 0.0);
    EXPECT_GT(p.forward, 0.0);
    EXPECT_GT(p.backward, 0.0);
    EXPECT_GT(p.optimizer, 0.0);
    EXPECT_GT(p.guard, 0.0) << "the source guard scored every window";
    EXPECT_NEAR(sum, r.adapt_seconds, 1e-9 + 1e-6 * r.adapt_seconds) << "the phases cover adapt_seconds";
  }
}

TEST(AdaptAdapter, DriftResetsAndOpensBurst) {
  const TinyModel m = tiny_model();
  AdapterConfig c = lora_config(AdaptOptimizerKind::AdamW, 3e-2);
  c.triggers = {.on_drift = true, .drift_burst = 2};
  c.drift.enabled = true;
  c.drift.test = {0.05, 1.0, 3};
  c.reset_on_drift = true;
  TestTimeAdapter a(m.config, m.params.data(), c);
  // 6 windows repeating the token the random model predicts best after itself, then uniform noise: the loss jumps.
  int32_t easy = 0;
  double best = 1e9;
  for (int32_t v = 0; v < m.config.vocab_size; ++v) {
    const std::vector<int32_t> ids(kS + 1, v);
    const double nll = window_nll(a, ids);
    if (nll < best) best = nll, easy = v;
  }
  TokenStream s = random_stream(12 * kS + 1, m.config.vocab_size, 33);
  std::fill(s.tokens.begin(), s.tokens.begin() + 6 * kS + 1, easy);
  std::vector<WindowOutcome> ws;
  run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) { ws.push_back(w); });
  int first_drift = -1;
  for (size_t i = 0; i < ws.size(); ++i)
    if (ws[i].drift && first_drift < 0) first_drift = int(i);
  ASSERT_GE(first_drift, 6) << "no false alarm before the shift";
  ASSERT_LE(first_drift, 9);
  EXPECT_TRUE(ws[size_t(first_drift)].adapted);
  EXPECT_EQ(ws[size_t(first_drift)].trigger, "drift");
  EXPECT_EQ(ws[size_t(first_drift)].reset, "drift");
  EXPECT_TRUE(ws[size_t(first_drift) + 1].adapted) << "the burst covers the next window";
  for (int i = 0; i < first_drift; ++i) EXPECT_FALSE(ws[size_t(i)].adapted);
}

std::string config_error(const ModelConfig& base, const std::vector<float>& p, const AdapterConfig& c) {
  try {
    TestTimeAdapter a(base, p.data(), c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AdaptAdapter, BadConfigIsError) {
  const TinyModel m = tiny_model();
  auto expect = [&](const std::function<void(AdapterConfig&)>& edit, const std::string& needle) {
    AdapterConfig c;
    edit(c);
    const std::string msg = config_error(m.config, m.params, c);
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected an error with \"" << needle << "\", got \"" << msg << "\"";
  };
  expect([](AdapterConfig& c) { c.optim.lr = -1e-3; }, "lr");
  expect([](AdapterConfig& c) { c.optim.lr = 0; }, "lr");
  expect([](AdapterConfig& c) { c.optim.momentum = 1.0; }, "momentum");
  expect([](AdapterConfig& c) { c.optim.clip = -1; }, "clip");
  expect([](AdapterConfig& c) { c.objective.entropy = 1, c.objective.entropy_gate = 0.0; }, "entropy_gate");
  expect([](AdapterConfig& c) { c.objective.entropy_gate = -1.0; }, "entropy_gate");
  expect([](AdapterConfig& c) { c.groups = parse_param_groups("lora"); }, "lora_rank");
  expect([](AdapterConfig& c) { c.lora_rank = -2; }, "lora_rank");
  expect([](AdapterConfig& c) { c.steps_per_window = 0; }, "steps_per_window");
  expect([](AdapterConfig& c) { c.objective.energy = 1; }, "expert costs");
  expect([](AdapterConfig& c) { c.objective.energy = 1, c.expert_costs = per_pair_costs({1, 2}); }, "expected 4 experts");
  expect([](AdapterConfig& c) { c.triggers.on_drift = true; }, "drift.enabled");
  expect([](AdapterConfig& c) { c.reset_on_drift = true; }, "drift.enabled");
  expect([](AdapterConfig& c) { c.predict_with_teacher = true; }, "teacher");
  expect([](AdapterConfig& c) { c.teacher = true, c.teacher_momentum = 1.0; }, "teacher_momentum");
  expect([](AdapterConfig& c) { c.guard.max_expert_share = 1.5; }, "max_expert_share");
  expect([](AdapterConfig& c) { c.triggers.every = -2; }, "every");
  expect([](AdapterConfig& c) { c.drift.enabled = true, c.drift.test.lambda = 0; }, "lambda");
  expect([](AdapterConfig& c) { c.groups = ParamGroups{}; }, "at least one");
  EXPECT_THROW(parse_adapt_optimizer("adam"), Error);
  EXPECT_THROW(parse_drift_signal("perplexity"), Error);
  try {
    parse_param_groups("router,experts");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown group \"experts\""), std::string::npos);
  }
  TestTimeAdapter a(m.config, m.params.data(), AdapterConfig{});
  EXPECT_THROW(a.set_expert_costs(per_pair_costs({1, 2, 3})), Error);
  const std::vector<int32_t> bad = {1, 2, 999, 3};
  EXPECT_THROW(a.process(bad.data(), 3), Error);
  EXPECT_THROW(a.process(bad.data(), 0), Error);
}

// The passes a window costs beyond its scoring forward (WindowOutcome::extra_forwards, backwards), which the
// simulated plant prices (plant/sim_plant.h charge_adaptation): one step reuses the scoring forward; later steps run a
// fresh forward; with replay every step runs over the batch; the live source check scores the window once more.
TEST(AdaptAdapter, CountsThePassesItRuns) {
  const TinyModel m = tiny_model();
  const std::vector<int32_t> w1 = random_ids(kS + 1, m.config.vocab_size, 41), w2 = random_ids(kS + 1, m.config.vocab_size, 42);
  AdapterConfig c = lora_config(AdaptOptimizerKind::AdamW, 1e-3);
  c.steps_per_window = 3;
  TestTimeAdapter a(m.config, m.params.data(), c);
  WindowOutcome r = a.process(w1.data(), kS);
  EXPECT_EQ(r.backwards, 3);
  EXPECT_EQ(r.extra_forwards, 2);

  c.steps_per_window = 2, c.replay = 2;
  TestTimeAdapter b(m.config, m.params.data(), c);
  r = b.process(w1.data(), kS);  // nothing stored yet: a batch of one
  EXPECT_EQ(r.backwards, 2);
  EXPECT_EQ(r.extra_forwards, 1);
  r = b.process(w2.data(), kS);  // this window and the last: two windows per pass, every step a fresh forward
  EXPECT_EQ(r.backwards, 4);
  EXPECT_EQ(r.extra_forwards, 4);

  c.steps_per_window = 1, c.replay = 1, c.source_guard.check_every = 1;
  TestTimeAdapter g(m.config, m.params.data(), c);
  r = g.process(w1.data(), kS);  // nothing adapted yet: nothing to compare
  EXPECT_EQ(r.backwards, 1);
  EXPECT_EQ(r.extra_forwards, 0);
  r = g.process(w2.data(), kS);  // on probation: the adapted weights score the window beside θ₀, once
  EXPECT_EQ(r.backwards, 1);
  EXPECT_EQ(r.extra_forwards, 1) << "the source check's forward";
}


}  // namespace
}  // namespace wattmoe::test
