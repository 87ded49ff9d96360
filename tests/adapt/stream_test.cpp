// run_stream: with every trigger off it reproduces eval/evaluate exactly; the callback can swap the routing between
// windows and stop the run; first/last expert-use matrices; online adaptation helps on a learnable stream.
#include <gtest/gtest.h>

#include "adapt/stream.h"
#include "adapt_test_util.h"
#include "core/error.h"
#include "eval/evaluate.h"

namespace wattmoe::test {
namespace {

TEST(AdaptStream, TriggersOffEqualsEvaluateExactly) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.triggers = {};  // nothing fires
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(7 * 16 + 9, m.config.vocab_size, 41);  // a partial last window
  const EvalResult ev = evaluate(*cpu_runner(m.config, a.params().data()), s, {16, 1});
  const StreamResult r = run_stream(a, s, {16, 0, 3});
  EXPECT_EQ(r.nats, ev.nats);
  EXPECT_EQ(r.tokens, ev.tokens);
  EXPECT_EQ(r.bytes, ev.bytes);
  EXPECT_EQ(r.bits_per_byte(), ev.bits_per_byte());
  EXPECT_EQ(r.counts, ev.expert_counts);
  EXPECT_NEAR(r.experts_per_token, ev.experts_per_token, 1e-12);
  EXPECT_EQ(r.windows, 8);
  EXPECT_EQ(r.adapted_windows, 0);
  EXPECT_EQ(r.adapt_seconds >= 0, true);
  const StreamResult none = run_stream(*cpu_runner(m.config, a.params().data()), s, {16, 0, 3});
  EXPECT_EQ(none.nats, ev.nats);
  // max_tokens as in evaluate.
  EXPECT_EQ(run_stream(a, s, {16, 50, 3}).nats, evaluate(*cpu_runner(m.config, a.params().data()), s, {16, 1, 50}).nats);
}

TEST(AdaptStream, CallbackSwapsRoutingAndStops) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.triggers = {};
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = random_stream(10 * 8 + 1, m.config.vocab_size, 42);
  RoutingSpec k1;
  k1.knobs.k_max = 1;
  std::vector<double> ept;
  std::vector<std::vector<std::vector<int64_t>>> counts;
  const StreamResult r = run_stream(a, s, {8, 0, 2}, {}, [&](const WindowInfo& info, const WindowOutcome& w, StreamControl& ctl) {
    ept.push_back(w.experts_per_token);
    counts.push_back(w.counts);
    EXPECT_EQ(info.index, int64_t(ept.size()) - 1);
    EXPECT_EQ(info.start, info.index * 8);
    if (info.index == 2) ctl.routing = k1;
    if (info.index == 5) ctl.stop = true;
  });
  ASSERT_EQ(ept.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(ept[size_t(i)], i <= 2 ? 2.0 : 1.0) << i;
  EXPECT_EQ(r.windows, 6);
  EXPECT_EQ(r.tokens, 48);
  // First / last two windows' expert use.
  auto sum = [&](size_t from, size_t to) {
    auto acc = counts[from];
    for (size_t w = from + 1; w < to; ++w)
      for (size_t l = 0; l < acc.size(); ++l)
        for (size_t e = 0; e < acc[l].size(); ++e) acc[l][e] += counts[w][l][e];
    return acc;
  };
  EXPECT_EQ(r.counts_first, sum(0, 2));
  EXPECT_EQ(r.counts_last, sum(4, 6));
  EXPECT_EQ(r.counts, sum(0, 6));
  EXPECT_NEAR(r.experts_per_token, (3 * 2.0 + 3 * 1.0) / 6, 1e-12);
}

TEST(AdaptStream, OnlineAdaptationHelpsOnLearnableStream) {
  const TinyModel m = tiny_model();
  AdapterConfig c;
  c.groups = parse_param_groups("router,norms,lora");
  c.lora_rank = 2;
  c.optim.kind = AdaptOptimizerKind::AdamW;
  c.optim.lr = 1e-2;
  TestTimeAdapter a(m.config, m.params.data(), c);
  const TokenStream s = motif_stream(20 * 16 + 1, m.config.vocab_size, 5, 43);
  const StreamResult adapted = run_stream(a, s, {16, 0, 4});
  const StreamResult none = run_stream(*cpu_runner(a.model_config(), a.source().data()), s, {16, 0, 4});
  EXPECT_LT(adapted.nats_per_token(), none.nats_per_token() - 0.3)
      << adapted.nats_per_token() << " vs " << none.nats_per_token();
  EXPECT_EQ(adapted.adapted_windows, 20);
  EXPECT_GT(adapted.adapt_seconds, 0);
}

TEST(AdaptStream, BadOptionsAreErrors) {
  const TinyModel m = tiny_model();
  const TokenStream s = random_stream(40, m.config.vocab_size, 44);
  const std::unique_ptr<Runner> model = cpu_runner(m.config, m.params.data());
  for (StreamOptions o : {StreamOptions{0, 0, 1}, StreamOptions{8, -1, 1}, StreamOptions{8, 0, 0}}) {
    try {
      run_stream(*model, s, o);
      ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("stream"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace wattmoe::test
