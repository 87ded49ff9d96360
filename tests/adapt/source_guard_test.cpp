// The source guard inside TestTimeAdapter, on a tiny random model: entropy minimisation with a large learning rate
// hurts a random stream, and the guard keeps the stream within its margin of the unadapted run; the extra forward
// never changes what is reported; the next-token objective, which helps, keeps its gain; bad values are Errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "adapt/adapter.h"
#include "adapt/stream.h"
#include "adapt_test_util.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

constexpr int kS = 16;
constexpr int kWindows = 96;

// TENT on every token with a step large enough to over-sharpen a near-uniform random model.
AdapterConfig entropy_config(double lr) {
  AdapterConfig c;
  c.groups = parse_param_groups("router,norms");
  c.objective.nll = 0, c.objective.entropy = 1, c.objective.entropy_gate = 100.0;
  c.optim.kind = AdaptOptimizerKind::AdamW, c.optim.lr = lr;
  return c;
}

struct GuardRun {
  StreamResult total;
  std::vector<WindowOutcome> windows;
};

GuardRun run(const TinyModel& m, const AdapterConfig& c, const TokenStream& s) {
  TestTimeAdapter a(m.config, m.params.data(), c);
  GuardRun r;
  r.total = run_stream(a, s, {kS, 0, 2}, {}, [&](const WindowInfo&, const WindowOutcome& w, StreamControl&) {
    r.windows.push_back(w);
  });
  return r;
}

double unadapted_nats(const TinyModel& m, const TokenStream& s) {
  return run_stream(*cpu_runner(m.config, m.params.data()), s, {kS, 0, 2}).nats;
}

AdapterConfig nll_config() {
  AdapterConfig c;
  c.groups = parse_param_groups("router,norms,lora");
  c.lora_rank = 2;
  c.optim.kind = AdaptOptimizerKind::AdamW, c.optim.lr = 1e-2;
  return c;
}

int64_t count_reason(const GuardRun& r, const std::string& why) {
  const auto it = r.total.reset_reasons.find(why);
  return it == r.total.reset_reasons.end() ? 0 : it->second;
}

TEST(AdaptSourceGuard, EntropyMinimisationHeldWithinMarginOfUnadapted) {
  const TinyModel m = tiny_model();
  const TokenStream s = random_stream(kWindows * kS + 1, m.config.vocab_size, 51);
  const double none = unadapted_nats(m, s);
  AdapterConfig c = entropy_config(1e-2);
  const GuardRun raw = run(m, c, s);
  ASSERT_GT(raw.total.nats, 1.05 * none) << "the construction: unguarded entropy minimisation hurts by > 5%";
  c.source_guard.check_every = 4;  // margin 0.002
  for (bool probation : {true, false}) {
    c.source_guard.probation = probation;
    const GuardRun g = run(m, c, s);
    SCOPED_TRACE(probation ? "probation" : "live only");
    EXPECT_LE(g.total.nats, (1 + c.source_guard.margin) * none);
    EXPECT_GE(count_reason(g, "worse_than_source"), 2);
    EXPECT_GT(g.total.suspended_windows, kWindows / 2) << "the backoff doubles: most of the stream does not adapt";
    EXPECT_EQ(g.total.resets, count_reason(g, "worse_than_source"));
    if (probation) EXPECT_EQ(g.total.nats, none) << "never promoted: every window reported with the source weights";
    // Suspended windows adapt nothing; the backoffs after consecutive failures double (8, 16, 32, …).
    std::vector<int> runs;
    for (size_t i = 0; i < g.windows.size(); ++i) {
      if (!g.windows[i].suspended) continue;
      EXPECT_FALSE(g.windows[i].adapted);
      EXPECT_FALSE(g.windows[i].probation);
      if (i == 0 || !g.windows[i - 1].suspended) runs.push_back(0);
      ++runs.back();
    }
    ASSERT_GE(runs.size(), 2u);
    EXPECT_EQ(runs[0], 8);
    EXPECT_EQ(runs[1], 16);
  }
}

TEST(AdaptSourceGuard, ExtraForwardNeverChangesReportedScores) {
  const TinyModel m = tiny_model();
  const TokenStream s = random_stream(24 * kS + 1, m.config.vocab_size, 53);
  const GuardRun none = [&] {
    AdapterConfig c;
    c.triggers = {};
    return run(m, c, s);
  }();
  AdapterConfig c = entropy_config(1e-2);
  const GuardRun raw = run(m, c, s);
  // A margin no comparison can cross: the guard compares but never resets nor promotes.
  c.source_guard.check_every = 3, c.source_guard.margin = 1e9;
  c.source_guard.probation = false;
  const GuardRun live = run(m, c, s);
  c.source_guard.probation = true;
  const GuardRun prob = run(m, c, s);
  ASSERT_EQ(live.windows.size(), raw.windows.size());
  ASSERT_EQ(prob.windows.size(), raw.windows.size());
  EXPECT_EQ(live.total.nats, raw.total.nats);
  EXPECT_EQ(live.total.resets, 0);
  EXPECT_EQ(prob.total.nats, none.total.nats) << "on probation the source weights are reported";
  int64_t live_checks = 0;
  for (size_t i = 0; i < raw.windows.size(); ++i) {
    const WindowOutcome &r = raw.windows[i], &l = live.windows[i], &p = prob.windows[i];
    const double unadapted = none.windows[i].nats;
    ASSERT_EQ(l.nats, r.nats) << "window " << i;
    ASSERT_EQ(l.counts, r.counts) << "window " << i;
    ASSERT_EQ(p.nats, unadapted) << "window " << i;
    EXPECT_EQ(p.probation, i > 0);
    // The adapted weights follow the same path whatever is reported: on probation they score as the unguarded run.
    if (i > 0) {
      ASSERT_EQ(p.tested_nats, r.nats) << "window " << i;
      ASSERT_EQ(p.source_nats, unadapted) << "window " << i;
    }
    if (!std::isnan(l.source_nats)) {
      ++live_checks;
      EXPECT_EQ(l.tested_nats, l.nats);
      EXPECT_EQ(l.source_nats, unadapted) << "the source weights score as the unadapted run, window " << i;
      EXPECT_NE(l.source_nats, l.nats);
      EXPECT_GT(l.adapt_seconds, 0.0);
    }
  }
  // Checks on the 1st, 4th, 7th, … window scored with adapted weights (windows 1, 4, …, 22).
  EXPECT_EQ(live_checks, 8);
  EXPECT_EQ(live.total.source_checks, 8);
  EXPECT_EQ(prob.total.source_checks, int64_t(raw.windows.size()) - 1);
  EXPECT_EQ(prob.total.probation_windows, int64_t(raw.windows.size()) - 1);
}

TEST(AdaptSourceGuard, NextTokenObjectiveKeepsItsGain) {
  const TinyModel m = tiny_model();
  const TokenStream s = motif_stream(kWindows * kS + 1, m.config.vocab_size, 7, 52);
  const double none = unadapted_nats(m, s);
  AdapterConfig c = nll_config();
  const GuardRun raw = run(m, c, s);
  const double gain = none - raw.total.nats;
  ASSERT_GT(gain, 0.3 * none) << "the construction: the next-token objective learns the motif";
  c.source_guard.check_every = 4;
  for (bool probation : {true, false}) {
    c.source_guard.probation = probation;
    const GuardRun g = run(m, c, s);
    SCOPED_TRACE(probation ? "probation" : "live only");
    EXPECT_EQ(count_reason(g, "worse_than_source"), 0);
    EXPECT_EQ(g.total.suspended_windows, 0);
    EXPECT_GE(none - g.total.nats, 0.99 * gain);
    EXPECT_LE(g.total.probation_windows, probation ? 2 : 0) << "promoted after promote_after comparisons";
  }
}

TEST(AdaptSourceGuard, BadConfigIsError) {
  const TinyModel m = tiny_model();
  auto msg = [&](const std::function<void(SourceGuardConfig&)>& edit) {
    AdapterConfig c;
    edit(c.source_guard);
    try {
      TestTimeAdapter a(m.config, m.params.data(), c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.check_every = -1; }).find("check_every"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.margin = -0.01; }).find("margin"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.margin = NAN; }).find("margin"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.alpha = 0; }).find("alpha"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.alpha = 1.5; }).find("alpha"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.backoff = -4; }).find("backoff"), std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.backoff = 64, g.max_backoff = 32; }).find("max_backoff"),
            std::string::npos);
  EXPECT_NE(msg([](SourceGuardConfig& g) { g.promote_after = 0; }).find("promote_after"), std::string::npos);
  EXPECT_EQ(msg([](SourceGuardConfig& g) { g.check_every = 4; }), "");
}

}  // namespace
}  // namespace wattmoe::test
