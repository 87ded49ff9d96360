// Decode-step CUDA graphs (gpu/transformer_cuda.h "Decode-step graphs", ops/cuda/step_graphs.h): the fused bf16
// runner's forward_slots with graphs on against the same runner with graphs off, step by step, BIT FOR BIT (a replay
// runs the eager step's kernels on the same inputs, so nothing but a stale input could make them differ). Archs:
// Mixtral (GQA), OLMoE (q/k norm, clip), Qwen2-MoE (shared expert, dense layer), and Mixtral with LoRA adapters, at
// odd sizes. The steps vary the row count (3, 3, 2, 3, 2, …: one graph per count) and empty slots between replays
// (positions and cache pointers come from device memory), change the routing policy between replays (top-2, then
// top-1, then skip β 0.5: device knobs a replay must read; the expert counts show the policy acted), change the
// LoRA adapters between replays (the merged experts are rebuilt outside the graph) and switch the expert tier to fp8
// (a new key, so a new capture). The graph runner must have captured and replayed and never given up; the eager
// runner never captured. forward_slots against the CPU model (graphs on, the default): slot_batch_test.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "../moe/model_gradcheck.h"
#include "adapt/param_groups.h"
#include "model/params.h"
#include "model/runner.h"
#include "ops/cuda/context.h"

namespace wattmoe {
namespace {

ModelConfig sized(ModelConfig c, int E) {  // fused- and fp8-eligible (H, I multiples of 16), other sizes odd
  c.vocab_size = 37, c.hidden_size = 32, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 8;
  c.intermediate_size = 48, c.moe_intermediate_size = 16, c.num_experts = E, c.top_k = 2;
  if (c.shared_expert_intermediate_size > 0) c.shared_expert_intermediate_size = 24;
  c.num_layers = 3;
  return c;
}

struct Step {
  std::vector<int32_t> slots, ids;
};

std::unique_ptr<Runner> fused_runner(const ModelConfig& c, bool graphs, const std::vector<float>& p) {
  RunnerOptions o;
  o.device = "cuda", o.precision = "bf16", o.moe_kernels = "fused", o.decode_graphs = graphs;
  std::unique_ptr<Runner> r = make_runner(c, o);
  r->set_params(p.data());
  r->reset_slots(4, 32);
  return r;
}

void expect_same_step(Runner& g, Runner& e, const Step& s, const std::string& what) {
  const int n = int(s.slots.size());
  g.forward_slots(s.slots.data(), s.ids.data(), n);
  e.forward_slots(s.slots.data(), s.ids.data(), n);
  const int64_t V = g.config().vocab_size;
  const std::vector<float> lg(g.logits(), g.logits() + n * V);
  const float* le = e.logits();
  ASSERT_EQ(std::memcmp(lg.data(), le, sizeof(float) * size_t(n * V)), 0) << what << ": logits differ";
  for (int l = 0; l < g.config().num_layers; ++l) {
    const std::vector<int32_t> ids = g.routing(l).expert, counts = g.routing(l).counts;
    EXPECT_EQ(ids, e.routing(l).expert) << what << " layer " << l;
    EXPECT_EQ(counts, e.routing(l).counts) << what << " layer " << l;
  }
}

// Pairs (token, expert) of every MoE layer in the last forward.
int64_t pairs(Runner& r) {
  int64_t n = 0;
  for (int l = 0; l < r.config().num_layers; ++l)
    for (int32_t c : r.routing(l).counts) n += c;
  return n;
}

void run_case(const std::string& name, const ModelConfig& c) {
  SCOPED_TRACE(name);
  std::vector<float> p = test::random_params<float>(ParamLayout::build(c), 77 + c.num_experts);
  std::unique_ptr<Runner> g = fused_runner(c, true, p), e = fused_runner(c, false, p);
  ASSERT_EQ(g->info().moe_kernels, "fused");
  int moe_layers = 0;
  for (int l = 0; l < c.num_layers; ++l) moe_layers += c.is_moe_layer(l);
  int t = 0;
  const auto step = [&](std::vector<int32_t> slots) {
    Step s;
    s.slots = std::move(slots);
    for (size_t i = 0; i < s.slots.size(); ++i) s.ids.push_back(int32_t((t * 7 + int(i) * 5 + 3) % c.vocab_size));
    ++t;
    return s;
  };
  const std::vector<std::vector<int32_t>> script = {{0, 1, 2}, {0, 1, 2}, {3, 1}, {2, 0, 1}, {1, 3}, {0, 2, 3}};
  const auto play = [&](const std::string& phase) {
    for (size_t i = 0; i < script.size(); ++i)
      expect_same_step(*g, *e, step(script[i]), phase + " step " + std::to_string(i));
  };
  play("top-2");
  EXPECT_EQ(pairs(*g), 2 * 3 * moe_layers);  // the last step: 3 rows, 2 experts each
  g->clear_slot(1), e->clear_slot(1);        // a fresh slot between replays: its position restarts at 0
  RoutingSpec top1;
  top1.knobs.k_max = 1;
  g->set_routing(top1), e->set_routing(top1);
  play("top-1");
  EXPECT_EQ(pairs(*g), 3 * moe_layers);  // the replayed graph read the new knob
  RoutingSpec skip;
  skip.policy = "skip", skip.knobs.beta = 0.5f;
  g->set_routing(skip), e->set_routing(skip);
  play("skip 0.5");
  if (c.lora_rank > 0) {  // new adapters between replays: merged again outside the graph
    ParamGroups adapters;
    adapters.lora = true;
    const std::vector<ParamRange> lora = trainable_ranges(adapters, c, g->layout());
    ASSERT_FALSE(lora.empty());
    for (const ParamRange& r : lora)
      for (int64_t i = 0; i < r.numel; ++i) p[size_t(r.offset + i)] += 0.05f * float((i % 7) - 3);
    g->set_param_ranges(p.data(), lora), e->set_param_ranges(p.data(), lora);
    play("new adapters");
  }
  g->set_routing(RoutingSpec{}), e->set_routing(RoutingSpec{});
  g->set_expert_precision(ops::ExpertPrecision::Fp8, p.data()), e->set_expert_precision(ops::ExpertPrecision::Fp8,
                                                                                          p.data());
  play("fp8 experts");
  const RunnerInfo gi = g->info(), ei = e->info();
  EXPECT_TRUE(gi.decode_graphs);
  EXPECT_EQ(gi.graph_failure, "");
  EXPECT_GE(gi.graph_captures, 2);                   // row counts 3 and 2 at least once each
  EXPECT_GT(gi.graph_replays, 3 * gi.graph_captures);  // most steps replayed
  EXPECT_FALSE(ei.decode_graphs);
  EXPECT_EQ(ei.graph_captures + ei.graph_replays, 0);
}

TEST(DecodeGraphCuda, ReplayEqualsEagerStepsBitForBit) {
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device";
  for (const test::NamedConfig& nc : test::all_arch_configs()) run_case(nc.name, sized(nc.config, 5));
  ModelConfig lora = sized(test::mixtral_config(), 6);
  lora.lora_rank = 3, lora.lora_scale = 0.5f;
  run_case("mixtral_lora", lora);
}

}  // namespace
}  // namespace wattmoe
