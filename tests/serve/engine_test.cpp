// serve/engine.h on the CPU with the shipped model and the simulated GPU: continuous batching gives every request
// exactly the text `wattmoe generate` gives (same prompt, seed, temperature, top-p), whatever else runs beside it;
// the requests' energies add up to the meter's energy over the same steps (the steps' sum and the meter's own outer
// window); a full queue refuses, a cancelled request leaves, a drain finishes what was accepted; a power budget moves
// the routing; the budget changes live.
#include "serve/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "../test_util.h"
#include "core/rng.h"
#include "eval/sample.h"
#include "model/checkpoint.h"

namespace wattmoe {
namespace {

const ModelWeights<float>& kjv() {
  static const ModelWeights<float> m = load_model<float>(test::source_path("models/kjv-small"));
  return m;
}

std::shared_ptr<const Tokenizer> bytes() { return std::make_shared<ByteTokenizer>(); }

// cli/cmd_generate.cpp's loop, as it is: one sequence, its own KV cache, sample_token from the last logits row.
std::string generate_like_cli(const GenParams& p, int context) {
  const ModelWeights<float>& m = kjv();
  ByteTokenizer tok;
  std::unique_ptr<Runner> model = make_runner(m.config, {});
  model->set_params(m.params.data());
  const int total = std::min<int>(context, int(p.prompt.size()) + p.max_tokens);
  const int V = m.config.vocab_size;
  model->reset_cache(total);
  const auto run = [&](const int32_t* x, int n) {
    model->forward_cached(x, n);
    return model->logits() + size_t(n - 1) * size_t(V);
  };
  Rng rng(p.seed);
  const float* last = run(p.prompt.data(), int(p.prompt.size()));
  int length = int(p.prompt.size());
  std::string out;
  while (length < total) {
    int32_t next = sample_token(last, V, p.temperature, p.top_p, rng);
    if (next >= tok.vocab_size()) next = 0;
    out += tok.decode(std::span<const int32_t>(&next, 1));
    last = run(&next, 1);
    ++length;
  }
  return out;
}

GenParams params(const std::string& prompt, int max_tokens, double temperature, double top_p, uint64_t seed) {
  GenParams p;
  p.prompt.assign(prompt.begin(), prompt.end());
  p.max_tokens = max_tokens, p.temperature = temperature, p.top_p = top_p, p.seed = seed;
  return p;
}

EngineConfig config(int max_batch, int max_queue) {
  EngineConfig c;
  c.model_id = "kjv-small";
  c.limits.max_batch = max_batch, c.limits.max_queue = max_queue;
  c.limits.min_free_host_mb = 0;
  c.energy.plant = "sim";
  c.energy.sim_period_s = 0.005;  // deterministic simulated steps
  return c;
}

TEST(ServeEngine, ContinuousBatchingEqualsGenerateAndEnergyAddsUp) {
  Engine e(config(3, 32), kjv(), bytes());
  std::vector<GenParams> ps = {
      params("In the beginning", 30, 0.0, 1.0, 1),  params("And God said", 12, 0.8, 0.95, 7),
      params("The LORD", 45, 1.0, 1.0, 3),          params("Blessed are", 5, 0.5, 0.9, 11),
      params("For God so loved", 25, 0.0, 1.0, 2),  params("Thou shalt", 60, 0.9, 0.8, 99),
      params("A", 100, 0.7, 1.0, 5),                params("In the beginning", 30, 0.0, 1.0, 1)};
  ps.back().stop = {"LORD"};  // the same greedy text as the first, cut at its first "LORD"
  std::vector<std::shared_ptr<Job>> jobs;
  for (const GenParams& p : ps) {
    jobs.push_back(std::make_shared<Job>(p));
    ASSERT_EQ(e.submit(jobs.back()), Engine::Admit::Ok);
  }
  // One request followed as a stream: its pieces add up to its text.
  std::string streamed;
  while (!jobs[5]->done()) jobs[5]->next(streamed, 1.0);
  jobs[5]->next(streamed, 0);
  double billed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    jobs[i]->wait_done();
    const GenParams& p = ps[i];
    std::string want = generate_like_cli(p, e.context());
    if (!p.stop.empty()) want = want.substr(0, want.find(p.stop[0]));
    EXPECT_EQ(jobs[i]->text(), want);
    const JobUsage u = jobs[i]->usage();
    EXPECT_EQ(jobs[i]->finish_reason(), p.stop.empty() ? "length" : "stop");
    EXPECT_EQ(u.prompt_tokens, int64_t(p.prompt.size()));
    if (p.stop.empty()) {
      EXPECT_EQ(u.completion_tokens, std::min<int64_t>(p.max_tokens, 128 - int64_t(p.prompt.size())));
    }
    EXPECT_GT(u.energy_j, 0);
    EXPECT_DOUBLE_EQ(u.experts_per_token(), 2.0);  // the model's own top-2
    billed += u.energy_j;
  }
  EXPECT_EQ(streamed, jobs[5]->text());
  const ServeStats st = e.stats();
  EXPECT_EQ(st.requests.at("ok"), jobs.size());
  EXPECT_NEAR(billed, st.energy_j, 1e-9 * st.energy_j);
  EXPECT_NEAR(st.billed_j, st.energy_j, 1e-9 * st.energy_j);
  const Json summary = e.stop();
  EXPECT_EQ(summary["schema"], "wattmoe.serve/1");
  EXPECT_EQ(summary["energy_source"], "simulated");
  EXPECT_NEAR(summary["meter_outer_window_j"].get<double>(), billed, 1e-9 * billed);  // the meter over the same steps
  // Every step lasted sim_period_s (the simulated work of a step this small fits in it).
  EXPECT_NEAR(summary["meter_outer_window_s"].get<double>(), 0.005 * double(st.steps), 1e-9);
}

TEST(ServeEngine, FullQueueRefusesCancelledRequestLeaves) {
  Engine e(config(1, 1), kjv(), bytes());
  auto a = std::make_shared<Job>(params("In", 120, 1.0, 1.0, 1));
  auto b = std::make_shared<Job>(params("And", 10, 1.0, 1.0, 2));
  auto c = std::make_shared<Job>(params("The", 10, 1.0, 1.0, 3));
  ASSERT_EQ(e.submit(a), Engine::Admit::Ok);
  std::string first;
  a->next(first, 30);  // a is running: b waits, c finds the queue full
  ASSERT_EQ(e.submit(b), Engine::Admit::Ok);
  EXPECT_EQ(e.submit(c), Engine::Admit::QueueFull);
  a->cancel();
  a->wait_done();
  EXPECT_EQ(a->finish_reason(), "cancelled");
  EXPECT_LT(a->usage().completion_tokens, 120);
  b->wait_done();
  EXPECT_EQ(b->finish_reason(), "length");
  EXPECT_EQ(b->text(), generate_like_cli(b->params(), e.context()));
  const ServeStats st = e.stats();
  EXPECT_EQ(st.rejected.at("queue_full"), 1u);
  EXPECT_EQ(st.requests.at("cancelled"), 1u);
  EXPECT_NEAR(st.billed_j, st.energy_j, 1e-9 * st.energy_j);  // the cancelled request was billed its steps too
}

// Memory pressure, driven through EngineConfig::host_available_bytes: near capacity (below 2 × --min-free-host-mb)
// at most half the batch runs and requests are still accepted (their text unchanged); at capacity new ones get
// Memory (429); when the reading recovers the full batch comes back. The metric says the level each time.
TEST(ServeEngine, MemoryPressureHalvesTheBatchThenRefusesThenRecovers) {
  auto avail = std::make_shared<std::atomic<double>>(1e12);
  EngineConfig c = config(4, 16);
  c.limits.min_free_host_mb = 100;
  c.host_available_bytes = [avail] { return avail->load(); };
  Engine e(c, kjv(), bytes());
  const auto level_metric = [&](int level) {
    return prometheus_text(e.stats()).find("wattmoe_memory_pressure " + std::to_string(level) + "\n") !=
           std::string::npos;
  };
  auto first = std::make_shared<Job>(params("In", 4, 0.0, 1.0, 1));
  ASSERT_EQ(e.submit(first), Engine::Admit::Ok);
  first->wait_done();
  EXPECT_EQ(e.stats().admit_limit, 4);
  EXPECT_TRUE(level_metric(0));

  avail->store(150 * 1048576.0);  // near capacity: 150 MB < 2 × 100 MB
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(std::make_shared<Job>(params("Amen", 12, 0.8, 1.0, uint64_t(i))));
    ASSERT_EQ(e.submit(jobs.back()), Engine::Admit::Ok);
  }
  EXPECT_EQ(e.stats().admit_limit, 2);
  EXPECT_TRUE(level_metric(1));
  int most = 0;
  for (bool all = false; !all;) {
    most = std::max(most, e.stats().running);
    all = true;
    for (const auto& j : jobs) all = all && j->done();
  }
  EXPECT_LE(most, 2);
  for (const auto& j : jobs) EXPECT_EQ(j->text(), generate_like_cli(j->params(), e.context()));

  avail->store(50 * 1048576.0);  // at capacity
  EXPECT_EQ(e.submit(std::make_shared<Job>(params("x", 1, 1.0, 1.0, 0))), Engine::Admit::Memory);
  EXPECT_TRUE(level_metric(2));
  EXPECT_EQ(e.stats().rejected.at("memory"), 1u);

  avail->store(1e12);  // pressure over
  auto last = std::make_shared<Job>(params("In", 4, 0.0, 1.0, 1));
  ASSERT_EQ(e.submit(last), Engine::Admit::Ok);
  last->wait_done();
  EXPECT_EQ(e.stats().admit_limit, 4);
  EXPECT_TRUE(level_metric(0));
}

// Test-time training on served text: the first answer equals wattmoe generate's (nothing adapted yet), nothing is
// adapted while the request runs, and after it is answered its text adapts the served weights in a step of its own
// that no request pays for (the meter's energy = the requests' + adaptation's).
TEST(ServeEngine, TestTimeTrainingAdaptsOnlyOnAnsweredText) {
  EngineConfig c = config(2, 8);
  c.ttt.enabled = true;
  Engine e(c, kjv(), bytes());
  const GenParams p = params("In the beginning", 24, 0.0, 1.0, 1);
  auto a = std::make_shared<Job>(p);
  ASSERT_EQ(e.submit(a), Engine::Admit::Ok);
  std::string piece;
  a->next(piece, 30);  // running: its text is not answered yet
  EXPECT_EQ(e.stats().ttt_windows, 0u);
  a->wait_done();
  EXPECT_EQ(a->text(), generate_like_cli(p, e.context()));
  ServeStats st = e.stats();
  for (int i = 0; i < 3000 && st.ttt_windows == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = e.stats();
  }
  EXPECT_EQ(st.ttt_windows, 1u);
  EXPECT_EQ(st.ttt_adapted, 1u);
  EXPECT_EQ(st.ttt_steps, 1u);
  EXPECT_EQ(st.ttt_resets, 0u);
  EXPECT_GT(st.ttt_distance, 0);  // the served weights moved
  EXPECT_GT(st.ttt_seconds, 0);
  for (int i = 0; i < 3000 && !(st.ttt_energy_j > 0); ++i) {  // the adaptation step's energy is final a little later
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = e.stats();
  }
  EXPECT_GT(st.ttt_energy_j, 0);
  EXPECT_NEAR(st.billed_j, a->usage().energy_j, 1e-9 * st.billed_j);  // the request paid its own steps only
  EXPECT_NEAR(st.energy_j, st.billed_j + st.ttt_energy_j, 1e-9 * st.energy_j);
  const std::string text = prometheus_text(st);
  for (const char* name : {"wattmoe_ttt_enabled 1", "wattmoe_ttt_adaptation_steps_total 1",
                           "wattmoe_ttt_windows_total 1", "wattmoe_ttt_energy_joules_total{source=\"simulated\"}",
                           "wattmoe_decode_graphs 0\n", "wattmoe_decode_graph_replays_total 0\n"})  // the CPU: none
    EXPECT_NE(text.find(name), std::string::npos) << name;
  // Served with the adapted weights from now on: still answers.
  auto b = std::make_shared<Job>(params("And God said", 8, 0.0, 1.0, 2));
  ASSERT_EQ(e.submit(b), Engine::Admit::Ok);
  b->wait_done();
  EXPECT_EQ(b->finish_reason(), "length");
}

TEST(ServeEngine, TestTimeTrainingOptionsChecked) {
  EngineConfig c = config(2, 8);
  c.ttt.enabled = true;
  c.ttt.adapter.time_phases = true;
  EXPECT_NE(test::error_of([&] { check_engine_config(c); }).find("--ttt-time-phases"), std::string::npos);
  c.ttt.adapter.time_phases = false;
  c.ttt.triggers = "sometimes";
  EXPECT_NE(test::error_of([&] { check_engine_config(c); }).find("--ttt-trigger"), std::string::npos);
  c.ttt.triggers = "always";
  c.limits.ttt_max_share = 0;
  EXPECT_NE(test::error_of([&] { check_engine_config(c); }).find("--ttt-max-share 0"), std::string::npos);
  c.limits.ttt_max_share = 0.5, c.ttt.enabled = false;
  EXPECT_NE(test::error_of([&] { check_engine_config(c); }).find("needs --ttt"), std::string::npos);
  c.ttt.enabled = true;
  check_engine_config(c);
  c.ttt.adapter.steps_per_window = 0;
  EXPECT_NE(test::error_of([&] { Engine e(c, kjv(), bytes()); }).find("steps_per_window"), std::string::npos);
}

TEST(ServeEngine, DrainFinishesWhatWasAccepted) {
  Engine e(config(2, 8), kjv(), bytes());
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(std::make_shared<Job>(params("Amen", 20, 1.0, 1.0, uint64_t(i))));
    ASSERT_EQ(e.submit(jobs.back()), Engine::Admit::Ok);
  }
  e.drain();
  EXPECT_EQ(e.submit(std::make_shared<Job>(params("x", 1, 1.0, 1.0, 0))), Engine::Admit::Draining);
  EXPECT_TRUE(e.wait_idle(60));
  for (const auto& j : jobs) {
    EXPECT_TRUE(j->done());
    EXPECT_EQ(j->finish_reason(), "length");
    EXPECT_EQ(j->usage().completion_tokens, 20);
  }
  EXPECT_TRUE(e.stats().draining);
}

TEST(ServeEngine, PowerBudgetMovesTheRoutingAndChangesLive) {
  EngineConfig c = config(4, 64);
  c.budget.power_w = 150;  // below what top-2 draws on the simulated Mixtral-shaped plant at these steps
  c.budget.control_policy = "topk";
  c.energy.sim_period_s = 0.002;
  Engine e(c, kjv(), bytes());
  EXPECT_TRUE(e.budget_active());
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 8; ++i) {
    jobs.push_back(std::make_shared<Job>(params("In the beginning", 80, 1.0, 1.0, uint64_t(i))));
    ASSERT_EQ(e.submit(jobs.back()), Engine::Admit::Ok);
  }
  for (const auto& j : jobs) j->wait_done();
  const ServeStats st = e.stats();
  EXPECT_GT(st.effort_u, 0);
  EXPECT_LT(jobs.back()->usage().experts_per_token(), 2.0);  // the controller took experts away
  EXPECT_EQ(e.budget_json()["decision"]["policy"], "topk");
  // Live: off, then a J/token budget, and refusals that name the field.
  BudgetUpdate off;
  off.power_w = 0;
  e.set_budget(off);
  EXPECT_FALSE(e.budget_active());
  EXPECT_TRUE(e.budget_json()["decision"].is_null());
  BudgetUpdate jpt;
  jpt.energy_j_per_token = 0.5, jpt.control_policy = "skip";
  e.set_budget(jpt);
  EXPECT_EQ(e.budget_json()["energy_j_per_token"], 0.5);
  BudgetUpdate bad;
  bad.power_w = -1;
  EXPECT_NE(test::error_of([&] { e.set_budget(bad); }).find("power_w"), std::string::npos);
  BudgetUpdate both;
  both.power_w = 100, both.energy_j_per_token = 1;
  EXPECT_NE(test::error_of([&] { e.set_budget(both); }).find("exclusive"), std::string::npos);
  BudgetUpdate policy;
  policy.control_policy = "nope";
  EXPECT_NE(test::error_of([&] { e.set_budget(policy); }).find("control_policy"), std::string::npos);
  EXPECT_EQ(e.budget_json()["control_policy"], "skip");  // a refused change changes nothing
  // A request may bound the experts per token under the budget.
  GenParams p = params("In", 10, 0.0, 1.0, 0);
  p.k_max_cap = 1;
  auto one = std::make_shared<Job>(p);
  ASSERT_EQ(e.submit(one), Engine::Admit::Ok);
  one->wait_done();
  EXPECT_DOUBLE_EQ(one->usage().experts_per_token(), 1.0);
}

// --ladder-tier fp8: a budget that knob control cannot hold takes the ladder to its tier level, and the server's
// experts switch to fp8 between steps (counted, shown in /v1/budget and /metrics); turning the budget off brings them
// back. Requests in flight finish on either tier.
TEST(ServeEngine, LadderTierSwitchesTheExpertsBetweenSteps) {
  EngineConfig c = config(4, 64);
  c.budget.power_w = 60;  // far below top-2's draw on the simulated plant: knob control saturates
  c.budget.control_policy = "topk", c.budget.ladder_dwell = 2, c.budget.ladder_tier = "fp8";
  c.energy.sim_period_s = 0.002;
  Engine e(c, kjv(), bytes());
  EXPECT_EQ(e.stats().expert_tier, "bf16");
  std::vector<std::shared_ptr<Job>> jobs;
  for (int i = 0; i < 8; ++i) {
    jobs.push_back(std::make_shared<Job>(params("In the beginning", 80, 1.0, 1.0, uint64_t(i))));
    ASSERT_EQ(e.submit(jobs.back()), Engine::Admit::Ok);
  }
  for (const auto& j : jobs) {
    j->wait_done();
    EXPECT_EQ(j->usage().completion_tokens, 80);
  }
  ServeStats st = e.stats();
  EXPECT_GE(st.tier_switches, 1u) << "the ladder never reached its tier level";
  EXPECT_EQ(st.expert_tier, "fp8");
  EXPECT_EQ(e.budget_json()["ladder_tier"], "fp8");
  EXPECT_EQ(e.budget_json()["decision"]["expert_tier"], "fp8");
  EXPECT_NE(prometheus_text(st).find("wattmoe_expert_tier_bytes{precision=\"fp8\"} 1"), std::string::npos);
  BudgetUpdate off;
  off.power_w = 0;
  e.set_budget(off);
  auto after = std::make_shared<Job>(params("In", 4, 0.0, 1.0, 0));
  ASSERT_EQ(e.submit(after), Engine::Admit::Ok);
  after->wait_done();
  st = e.stats();
  EXPECT_EQ(st.expert_tier, "bf16");
  EXPECT_EQ(st.tier_switches % 2, 0u);  // every switch down came back up
  // The tier needs the server's own experts in bf16.
  EngineConfig q = config(1, 1);
  q.budget.ladder_tier = "fp8", q.runner.expert_precision = "int8";
  const std::string why = test::error_of([&] { Engine bad(q, kjv(), bytes()); });
  EXPECT_NE(why.find("--ladder-tier fp8 with --expert-precision int8"), std::string::npos) << why;
}

TEST(ServeEngine, RequestRoutingAndMetricsText) {
  Engine e(config(2, 8), kjv(), bytes());
  RoutingOptions o = e.routing_options();
  o.k_max = 1;
  GenParams p = params("In the", 8, 0.0, 1.0, 0);
  p.routing = e.request_routing(o);
  auto j = std::make_shared<Job>(p);
  ASSERT_EQ(e.submit(j), Engine::Admit::Ok);
  j->wait_done();
  EXPECT_DOUBLE_EQ(j->usage().experts_per_token(), 1.0);
  o.policy = "nope";
  EXPECT_NE(test::error_of([&] { e.request_routing(o); }).find("routing:"), std::string::npos);
  const std::string text = prometheus_text(e.stats());
  for (const char* name :
       {"wattmoe_power_watts{source=\"simulated\"}", "wattmoe_energy_joules_total{source=\"simulated\"}",
        "wattmoe_gpu_temperature_celsius", "wattmoe_clock_event_reason_active{reason=\"sw_power_cap\"",
        "wattmoe_joules_per_token", "wattmoe_tokens_per_second", "wattmoe_experts_per_token",
        "wattmoe_expert_tokens_total{layer=\"3\",expert=\"7\"}", "wattmoe_queue_length 0",
        "wattmoe_request_latency_seconds_bucket{le=\"+Inf\"} 1", "wattmoe_request_latency_seconds_count 1",
        "wattmoe_requests_total{outcome=\"ok\"} 1", "wattmoe_memory_pressure 0", "wattmoe_kv_slots_free 2"})
    EXPECT_NE(text.find(name), std::string::npos) << name;
}

}  // namespace
}  // namespace wattmoe
