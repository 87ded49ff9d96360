// TransformerCudaBf16 with its MoE layers on the fused kernels (set_moe_kernels(MoeKernels::Fused), ops/moe_cuda.h),
// plain top-k (the routing policies, LoRA, shared experts and backward: model_fused_policy_test.cpp)
// against the same model on the host-routing path and against the CPU fp32 model, on the shipped model
// (models/kjv-small: H 128, I 256, E 8, k 2, 4 layers) and on random eligible configs with odd sizes (H, I multiples
// of 8 but not of 64; vocabulary, heads and token counts odd; E 5–7; k 1, 2, 3; Mixtral, OLMoE without
// renormalisation, Qwen2-MoE with a dense layer and no shared expert). Token counts cover the three paths of the
// fused layer: T ≤ 8 (decode kernels), 64-row tiles, 128-row tiles (cp.async below T·k = 4096, TMA multicast from
// there: kjv-small at the eval batch 16 × 128).
//
// Routing. The fused layer takes the top-k of its fp32 router probabilities (softmax of its bf16 logits: the logits'
// order except where two fp32 probabilities are equal); the host path takes the top-k of the bf16 router
// probabilities. Both break ties toward the lower expert index. Their logits are roundings to bf16 of the same
// fp32 dot product summed in different orders, so they agree or differ by one bf16 ulp; and two experts whose logits
// differ by Δz < 2^-7 may have equal bf16 probabilities (p_a / p_b = e^Δz, and bf16 resolves a relative step of at
// worst 2^-7). That holds where both paths see the same layer input: up to the first MoE layer they run the same
// kernels, so its input is bitwise the same. A later MoE layer's input carries the earlier MoE blocks' rounding
// differences, and its router logits then differ by up to 2 · 3e-2 · max|logit| (each path's router logits lie within
// 3e-2 of the largest of the CPU fp32 model's, the bf16 bound of model_parity_test.cpp). So a slot where the two
// selections differ is a NEAR-TIE when the two experts' host logits differ by at most 2 ulp(bf16, max |logit| of the
// pair) + 2^-7, plus 2 · 3e-2 · max|logit of the layer| after the first MoE layer; any other difference fails the test.
// The host selection compared is the top-k of the host forward that replays the fused selection (its own probabilities
// at each layer), so one differing choice does not cascade into later layers. Near-ties are counted and printed.
//
// Logits. Each fused forward is compared with a host forward that REPLAYS the fused selection (and with the CPU model
// replaying it), so that differing selections cannot hide behind the tolerance. The host path differs from the fused
// one only in the MoE block's roundings: host g, u, a, y and the route weights (bf16 probabilities) are stored in bf16
// (≈ 6 roundings of at most 2^-9 on an expert output), the fused layer rounds h and the weighted row once each and
// keeps fp32 weights. Adding as a random walk, √8 · 2^-9 ≈ 5.5e-3 of an MoE output per MoE layer, over ≤ 4 MoE layers
// √4 · 5.5e-3 = 1.1e-2, with the same allowance of 2.5 for amplification by norms and softmaxes as the bf16 parity
// test (model_parity_test.cpp): 2.8e-2, so logits within 3e-2 of their largest value (max |a − b| / max |b|), the
// bound that test derives for bf16 against the CPU fp32 model, which applies to the fused path against the CPU too.
// NaN/inf are checked first. Buffers hold stale values: each model first runs a larger batch of other ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../moe/model_gradcheck.h"
#include "../test_util.h"
#include "model_compare.h"
#include "core/dtype.h"
#include "eval/evaluate.h"
#include "model/runner.h"
#include "gpu/moe_fused_cuda.h"
#include "gpu/transformer_cuda.h"
#include "model/checkpoint.h"
#include "model/objective.h"
#include "model/transformer.h"
#include "ops/cuda/context.h"

namespace wattmoe {
namespace {

constexpr double kTolBf16 = 3e-2;

#define SKIP_WITHOUT_GPU() \
  if (!cuda::device_available()) GTEST_SKIP() << "no CUDA device"

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

using test::norm_err;

// One unit in the last place of bf16 at |x| (8 significant bits).
double bf16_ulp(double x) {
  const double a = std::max(std::abs(x), 1e-30);
  return std::ldexp(1.0, std::ilogb(a) - 7);
}

struct RoutingDiff {
  int64_t slots = 0, near_ties = 0, other = 0;
  std::string first_other;
};

// Compares a fused selection with the host path's own (same model, same input) slot by slot; `logits` are the host
// path's bf16 router logits [N, E] widened.
// `propagated`: the layer's input differs between the paths (after the first MoE layer), see the header.
void compare_routing(int layer, const Routing& fused, const Routing& host, const std::vector<float>& logits,
                     bool propagated, RoutingDiff& d) {
  ASSERT_EQ(fused.tokens, host.tokens);
  ASSERT_EQ(fused.k, host.k);
  const int E = host.experts, k = host.k;
  double zmax = 0;
  for (float z : logits) zmax = std::max(zmax, double(std::abs(z)));
  const double input = propagated ? 2 * kTolBf16 * zmax : 0;
  for (int64_t t = 0; t < host.tokens; ++t)
    for (int s = 0; s < k; ++s) {
      ++d.slots;
      const int a = fused.expert[size_t(t * k + s)], b = host.expert[size_t(t * k + s)];
      if (a == b) continue;
      ASSERT_TRUE(a >= 0 && a < E && b >= 0 && b < E) << "layer " << layer << " token " << t;
      const double za = logits[size_t(t * E + a)], zb = logits[size_t(t * E + b)];
      const double tol = 2 * bf16_ulp(std::max(std::abs(za), std::abs(zb))) + std::ldexp(1.0, -7) + input;
      if (std::abs(za - zb) <= tol) {
        ++d.near_ties;
      } else if (d.other++ == 0) {
        d.first_other = "layer " + std::to_string(layer) + " token " + std::to_string(t) + " slot " +
                        std::to_string(s) + ": fused expert " + std::to_string(a) + " (logit " + std::to_string(za) +
                        "), host expert " + std::to_string(b) + " (logit " + std::to_string(zb) + ")";
      }
    }
}

void expect_counts_match_ids(const Routing& r, int layer) {
  Routing re = r;
  re.recount();
  EXPECT_EQ(r.counts, re.counts) << "layer " << layer << ": expert counts differ from the ids";
  int64_t total = 0;
  for (int32_t c : r.counts) total += c;
  EXPECT_EQ(total, r.tokens * r.k) << "layer " << layer;
  for (int32_t e : r.expert) EXPECT_TRUE(e >= 0 && e < r.experts) << "layer " << layer << ": id " << e;
}

using test::replay;
using test::routings;

struct Stats {
  double vs_host = 0, vs_cpu = 0;
  RoutingDiff diff;
};

// One input through the fused path, the host path replaying it, the host path on its own, and the CPU fp32 model
// (same bf16-rounded weights) replaying it.
void check_forward(gpu::TransformerCudaBf16& m, const Transformer<float>& cpu, const std::vector<float>& p,
                   const std::vector<int32_t>& ids, int B, int S, Stats& st) {
  const ModelConfig& c = m.config();
  m.set_moe_kernels(gpu::MoeKernels::Fused);
  m.forward(ids.data(), B, S);
  ASSERT_TRUE(m.last_forward_fused());
  const std::vector<float> fused = m.download_logits();
  ASSERT_TRUE(all_finite(fused)) << "non-finite fused logits";
  const std::vector<Routing> rf = routings(m);
  for (int l = 0; l < c.num_layers; ++l) {
    ASSERT_EQ(c.is_moe_layer(l), rf[size_t(l)].tokens > 0) << "layer " << l;
    if (!c.is_moe_layer(l)) continue;
    ASSERT_EQ(rf[size_t(l)].tokens, int64_t(B) * S);
    ASSERT_EQ(rf[size_t(l)].k, c.top_k);
    expect_counts_match_ids(rf[size_t(l)], l);
    EXPECT_TRUE(m.routing(l).logits.empty());
  }
  m.forward(ids.data(), B, S);  // bitwise repeatable (no float atomics in the fused layer)
  EXPECT_TRUE(m.download_logits() == fused) << "a second fused forward differs";

  m.set_moe_kernels(gpu::MoeKernels::Host);
  m.forward(ids.data(), B, S, replay(rf));
  ASSERT_FALSE(m.last_forward_fused());
  const std::vector<float> host_replay = m.download_logits();
  ASSERT_TRUE(all_finite(host_replay));
  const double e_host = norm_err(fused, host_replay);
  EXPECT_LE(e_host, kTolBf16) << "fused vs host path (same selection)";
  st.vs_host = std::max(st.vs_host, e_host);

  int first_moe = -1;
  for (int l = 0; l < c.num_layers; ++l) {  // the top-k the host path would take on its inputs of the replay forward
    if (!c.is_moe_layer(l)) continue;
    if (first_moe < 0) first_moe = l;
    const gpu::HostRouting& hr = m.routing(l);
    Routing own;
    select_topk<float>(hr.probs.data(), int64_t(B) * S, c.num_experts, c.top_k, own);
    compare_routing(l, rf[size_t(l)], own, hr.logits, l != first_moe, st.diff);
  }
  EXPECT_EQ(st.diff.other, 0) << "routing differs beyond near-ties, first: " << st.diff.first_other;

  Activations<float> acts;
  cpu.forward(p.data(), ids.data(), B, S, acts, nullptr, replay(rf));
  const double e_cpu = norm_err(fused, acts.logits);
  EXPECT_LE(e_cpu, kTolBf16) << "fused vs CPU fp32 (same selection)";
  st.vs_cpu = std::max(st.vs_cpu, e_cpu);
}

// Decoding with the KV cache: prefill `prompt`, then `steps` single tokens (T = 1: the decode kernels), fused
// against host replaying it, each chunk's logits and routing checked as above.
void check_decode(gpu::TransformerCudaBf16& f, gpu::TransformerCudaBf16& h, const std::vector<int32_t>& ids,
                  int prompt, int steps, Stats& st) {
  const ModelConfig& c = f.config();
  f.set_moe_kernels(gpu::MoeKernels::Fused);
  h.set_moe_kernels(gpu::MoeKernels::Host);
  f.reset_cache(prompt + steps), h.reset_cache(prompt + steps);
  int pos = 0;
  for (int i = 0; i <= steps; ++i) {
    const int n = i == 0 ? prompt : 1;
    f.forward_cached(ids.data() + pos, n);
    const std::vector<float> lf = f.download_logits();
    ASSERT_TRUE(all_finite(lf));
    const std::vector<Routing> rf = routings(f);
    h.forward_cached(ids.data() + pos, n, replay(rf));
    const double e = norm_err(lf, h.download_logits());
    EXPECT_LE(e, kTolBf16) << "decode step " << i;
    st.vs_host = std::max(st.vs_host, e);
    for (int l = 0; l < c.num_layers; ++l)
      if (c.is_moe_layer(l)) expect_counts_match_ids(rf[size_t(l)], l);
    pos += n;
  }
}

ModelConfig eligible(Arch arch, int H, int I, int E, int k, bool renorm) {
  ModelConfig c = arch == Arch::Mixtral ? test::mixtral_config(2)
                  : arch == Arch::Olmoe ? test::olmoe_config(2, 0.9)
                                        : test::qwen2moe_config(3);
  c.vocab_size = 53, c.hidden_size = H, c.num_heads = 3, c.num_kv_heads = 1, c.head_dim = 10;
  c.intermediate_size = 19, c.moe_intermediate_size = I, c.num_experts = E, c.top_k = k, c.norm_topk_prob = renorm;
  if (arch == Arch::Qwen2Moe) c.shared_expert_intermediate_size = 0, c.tie_word_embeddings = false;
  return c;
}

struct Case {
  std::string name;
  ModelConfig config;
};

std::vector<Case> eligible_cases() {
  return {{"mixtral_H40_I24_E5_k2", eligible(Arch::Mixtral, 40, 24, 5, 2, true)},
          {"olmoe_H24_I56_E7_k3_norenorm", eligible(Arch::Olmoe, 24, 56, 7, 3, false)},
          {"qwen2moe_dense0_H32_I16_E6_k1", eligible(Arch::Qwen2Moe, 32, 16, 6, 1, false)}};
}

// The bf16 weight copy's layout (gpu/moe_fused_cuda.h; host code, runs without a GPU): every tensor 16-byte aligned,
// no two overlap, all inside the copy; each MoE layer's gates, ups and downs expert-major and contiguous. Configs with
// q/k/v biases and norms of sizes that are not multiples of 8 (so the ParamLayout offsets are not), LoRA, dense layers.
TEST(FusedMoeModel, Bf16LayoutIsAlignedAndExpertMajor) {
  ModelConfig lora = eligible(Arch::Mixtral, 40, 24, 5, 2, true);
  lora.lora_rank = 3;
  for (const ModelConfig& c : {eligible(Arch::Qwen2Moe, 32, 16, 6, 1, false), eligible(Arch::Olmoe, 24, 56, 7, 3, false),
                               lora, test::qwen2moe_config(3)}) {
    const ParamLayout L = ParamLayout::build(c);
    int64_t total = 0;
    const std::vector<int64_t> off = gpu::expert_major_offsets(c, L, &total);
    ASSERT_EQ(off.size(), L.specs().size());
    EXPECT_GE(total, L.total());
    std::vector<std::pair<int64_t, int64_t>> ranges;
    for (size_t i = 0; i < off.size(); ++i) {
      const ParamSpec& s = L.specs()[i];
      EXPECT_EQ(off[i] % 8, 0) << s.name;
      ranges.push_back({off[i], off[i] + s.numel});
      if (s.kind == ParamKind::Expert) {  // which: gate, up, down by the name's order within the expert
        const int64_t m = int64_t(c.moe_intermediate_size) * c.hidden_size;
        const ParamSpec* g = L.find(expert_name(c, s.layer, 0, "gate"));
        const size_t g0 = size_t(g - L.specs().data());
        const std::string n = s.name;
        const int which = n == expert_name(c, s.layer, s.expert, "gate") ? 0
                          : n == expert_name(c, s.layer, s.expert, "up") ? 1 : 2;
        EXPECT_EQ(off[i], off[g0] + (int64_t(which) * c.num_experts + s.expert) * m) << s.name;
      }
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 0; i < ranges.size(); ++i) {
      EXPECT_LE(ranges[i].second, total);
      if (i) EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "overlap";
    }
  }
}

TEST(FusedMoeModel, RandomConfigsMatchHostAndCpu) {
  SKIP_WITHOUT_GPU();
  cuda::Context ctx;
  // (B, S): 21 tokens (64-row tiles), 7 tokens (decode kernels), 5 × 61 = 305 tokens (128-row tiles where T·k ≥ 64·E).
  const std::vector<std::pair<int, int>> shapes = {{3, 7}, {1, 7}, {5, 61}};
  for (const Case& k : eligible_cases()) {
    SCOPED_TRACE(k.name);
    const ModelConfig& c = k.config;
    c.validate(k.name);
    const Transformer<float> cpu(c);
    std::vector<float> p = test::random_params<float>(cpu.layout(), 51 + c.num_experts);
    for (float& x : p) x = bf16_to_f32(f32_to_bf16(x));
    gpu::TransformerCudaBf16 m(c, ctx);
    m.upload_params(p.data());
    EXPECT_EQ(m.fused_moe_unsupported(), "");
    {  // stale buffers of another shape
      const std::vector<int32_t> big = test::random_ids(6 * 67, c.vocab_size, 14);
      m.set_moe_kernels(gpu::MoeKernels::Fused);
      m.forward(big.data(), 6, 67);
      m.set_moe_kernels(gpu::MoeKernels::Host);
      m.forward(big.data(), 6, 67);
    }
    Stats st;
    for (const auto& [B, S] : shapes) {
      SCOPED_TRACE(std::to_string(B) + "x" + std::to_string(S));
      check_forward(m, cpu, p, test::random_ids(B * S, c.vocab_size, 15 + B), B, S, st);
    }
    gpu::TransformerCudaBf16 h(c, ctx);
    h.upload_params(p.data());
    check_decode(m, h, test::random_ids(40, c.vocab_size, 16), 11, 20, st);
    std::printf("[fused]  %-32s logits vs host %.2e vs cpu %.2e; routing: %lld near-ties of %lld slots\n",
                k.name.c_str(), st.vs_host, st.vs_cpu, (long long)st.diff.near_ties, (long long)st.diff.slots);
  }
}

const char* kText =
    "In the beginning God created the heaven and the earth. And the earth was without form, and void; and darkness "
    "was upon the face of the deep. And the Spirit of God moved upon the face of the waters. And God said, Let there "
    "be light: and there was light. And God saw the light, that it was good: and God divided the light from the "
    "darkness. And God called the light Day, and the darkness he called Night. And the evening and the morning were "
    "the first day. ";

std::vector<int32_t> text_ids(size_t n, size_t offset) {
  const std::string t = kText;
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = int32_t(uint8_t(t[(i + offset) % t.size()]));
  return ids;
}

TEST(FusedMoeModel, ShippedModelMatchesHostAndCpu) {
  SKIP_WITHOUT_GPU();
  cuda::Context ctx;
  ModelWeights<float> w = load_model<float>(test::source_path("models/kjv-small"));
  const ModelConfig& c = w.config;
  for (float& x : w.params) x = bf16_to_f32(f32_to_bf16(x));
  const Transformer<float> cpu(c);
  gpu::TransformerCudaBf16 m(c, ctx);
  m.upload_params(w.params.data());
  ASSERT_EQ(m.fused_moe_unsupported(), "");
  Stats st;
  // 16 × 128 (wattmoe eval's batch: T·k = 4096, the TMA multicast kernel), 3 × 41 (64-row tiles), 1 × 5 (decode).
  for (const auto& [B, S] : std::vector<std::pair<int, int>>{{16, 128}, {3, 41}, {1, 5}}) {
    SCOPED_TRACE(std::to_string(B) + "x" + std::to_string(S));
    check_forward(m, cpu, w.params, text_ids(size_t(B) * S, size_t(B) * 7), B, S, st);
  }
  gpu::TransformerCudaBf16 h(c, ctx);
  h.upload_params(w.params.data());
  check_decode(m, h, text_ids(100, 3), 17, 40, st);
  std::printf("[fused]  %-32s logits vs host %.2e vs cpu %.2e; routing: %lld near-ties of %lld slots\n",
              "kjv-small", st.vs_host, st.vs_cpu, (long long)st.diff.near_ties, (long long)st.diff.slots);
}

// Greedy generation on the shipped model, fused and host path each feeding back its own argmax, for several short
// prompts: the generated tokens must be equal for as long as the routing of every step is identical (compared step by
// step, prefill included). A routing difference must be a near-tie (compare_routing) and ends that prompt's
// comparison; over all prompts at least 48 tokens must have been compared (a near-tie is rare: ~1% of boundaries).
TEST(FusedMoeModel, GreedyGenerationEqualsHostPath) {
  SKIP_WITHOUT_GPU();
  cuda::Context ctx;
  const ModelWeights<float> w = load_model<float>(test::source_path("models/kjv-small"));
  const ModelConfig& c = w.config;
  gpu::TransformerCudaBf16 f(c, ctx), h(c, ctx);
  f.upload_params(w.params.data()), h.upload_params(w.params.data());
  f.set_moe_kernels(gpu::MoeKernels::Fused);
  constexpr int kNew = 40;
  const auto argmax_last = [&](const std::vector<float>& l) {
    const size_t V = size_t(c.vocab_size), r = l.size() / V - 1;
    return int32_t(std::max_element(l.begin() + r * V, l.begin() + (r + 1) * V) - (l.begin() + r * V));
  };
  int compared = 0;
  for (const std::string prompt : {"In the beginning", "And God said", "Blessed are the", "The LORD is my"}) {
    f.reset_cache(int64_t(prompt.size()) + kNew), h.reset_cache(int64_t(prompt.size()) + kNew);
    std::vector<int32_t> in(prompt.begin(), prompt.end()), tf, th;
    int32_t nf = 0, nh = 0;
    RoutingDiff d;
    for (int i = 0; i <= kNew; ++i) {
      const int n = i == 0 ? int(in.size()) : 1;
      f.forward_cached(i == 0 ? in.data() : &nf, n), h.forward_cached(i == 0 ? in.data() : &nh, n);
      const std::vector<float> lf = f.download_logits(), lh = h.download_logits();
      ASSERT_TRUE(all_finite(lf));
      for (int l = 0; l < c.num_layers; ++l)  // kjv-small: every layer is an MoE layer
        compare_routing(l, f.routing(l).routing, h.routing(l).routing, h.routing(l).logits, l > 0, d);
      ASSERT_EQ(d.other, 0) << prompt << ": routing differs beyond a near-tie: " << d.first_other;
      if (d.near_ties > 0) {
        std::printf("[fused]  greedy \"%s\": near-tie in the routing at step %d; stopped there\n", prompt.c_str(), i);
        break;
      }
      nf = argmax_last(lf), nh = argmax_last(lh);
      ASSERT_EQ(nf, nh) << prompt << " step " << i << ": greedy tokens differ with identical routing";
      if (i < kNew) tf.push_back(nf), th.push_back(nh), ++compared;
    }
    EXPECT_EQ(tf, th);
    std::printf("[fused]  greedy %2d tokens equal: \"%s|%s\"\n", int(tf.size()), prompt.c_str(),
                std::string(tf.begin(), tf.end()).c_str());
  }
  EXPECT_GE(compared, 48) << "too few tokens compared with identical routing";
}

TEST(FusedMoeModel, IneligibleModelsAndMisuseSayWhy) {
  SKIP_WITHOUT_GPU();
  cuda::Context ctx;
  const auto why_bf16 = [&](ModelConfig c) {
    gpu::TransformerCudaBf16 m(c, ctx);
    const std::string why = m.fused_moe_unsupported();
    EXPECT_NE(why, "");
    EXPECT_THROW(m.set_moe_kernels(gpu::MoeKernels::Fused), Error);
    EXPECT_EQ(m.moe_kernels(), gpu::MoeKernels::Host);
    return why;
  };
  ModelConfig ok = eligible(Arch::Mixtral, 40, 24, 5, 2, true);
  ModelConfig odd_h = ok;
  odd_h.hidden_size = 36;
  EXPECT_NE(why_bf16(odd_h).find("hidden size 36"), std::string::npos);
  ModelConfig odd_i = ok;
  odd_i.moe_intermediate_size = 20 + 3;
  EXPECT_NE(why_bf16(odd_i).find("expert width 23"), std::string::npos);
  {
    gpu::TransformerCuda f32(ok, ctx);
    EXPECT_NE(f32.fused_moe_unsupported().find("bf16"), std::string::npos);
    EXPECT_THROW(f32.set_moe_kernels(gpu::MoeKernels::Fused), Error);
  }
  // Fused forwards take no RouterSelect (the policy is device knobs: set_route_policies); backward and the
  // auxiliary losses work after them (model_fused_policy_test.cpp compares them with the host path).
  gpu::TransformerCudaBf16 m(ok, ctx);
  const Transformer<float> cpu(ok);
  const std::vector<float> p = test::random_params<float>(cpu.layout(), 3);
  m.upload_params(p.data());
  EXPECT_THROW(m.set_route_policies({}), Error);  // host kernels: no policy blocks
  m.set_moe_kernels(gpu::MoeKernels::Fused);
  const std::vector<int32_t> ids = test::random_ids(2 * 9, ok.vocab_size, 4);
  const RouterSelect<float> topk = [](int, const float*, const float* probs, int64_t n, Routing& out) {
    select_topk<float>(probs, n, 5, 2, out);
  };
  EXPECT_THROW(m.forward(ids.data(), 2, 9, topk), Error);
  m.forward(ids.data(), 2, 9);
  EXPECT_TRUE(m.routing(0).logits.empty());  // router outputs come up only when asked for
  m.objective(Objective::Nll, true);
  m.router_aux_losses(0.01, 0);
  EXPECT_FALSE(m.routing(0).logits.empty());
  m.backward();
  m.set_moe_kernels(gpu::MoeKernels::Host);
  m.forward(ids.data(), 2, 9, topk);
  m.objective(Objective::Nll, true);
  m.router_aux_losses(0.01, 0);
  m.backward();
  EXPECT_FALSE(m.routing(0).logits.empty());
}

// evaluate on a fused-kernel runner sees the routing through the observer and in its expert counts: per layer, the
// counts the evaluation reports equal the sum of what the observer saw, and bits/byte is within the logit bound of
// the host path's (|Δ nats/token| ≤ 2 · max|Δlogit|, log-softmax being 2-Lipschitz in the max norm; a near-tie that
// routes a token differently is not covered by that bound but moves a mean over 640 tokens little).
TEST(FusedMoeModel, EvaluateCountsReachTheCaller) {
  SKIP_WITHOUT_GPU();
  cuda::Context ctx;
  const ModelWeights<float> w = load_model<float>(test::source_path("models/kjv-small"));
  const ModelConfig& c = w.config;
  TokenStream s;
  s.tokens = text_ids(16 * 40 + 23, 0);
  s.bytes = int64_t(s.tokens.size());
  std::unique_ptr<Runner> fused = make_runner(c, {"cuda", "bf16", "fused"});
  std::unique_ptr<Runner> host = make_runner(c, {"cuda", "bf16", "host"});
  fused->set_params(w.params.data()), host->set_params(w.params.data());
  ASSERT_EQ(fused->info().moe_kernels, "fused");
  std::vector<std::vector<int64_t>> seen(size_t(c.num_layers), std::vector<int64_t>(size_t(c.num_experts), 0));
  int calls = 0;
  fused->set_routing_observer([&](int l, const Routing& r) {
    ++calls;
    for (int e = 0; e < c.num_experts; ++e) seen[size_t(l)][size_t(e)] += r.counts[size_t(e)];
  });
  const EvalResult rf = evaluate(*fused, s, {40, 4});
  const EvalResult rh = evaluate(*host, s, {40, 4});
  gpu::TransformerCudaBf16 m(c, ctx);
  m.upload_params(w.params.data());
  EXPECT_GT(calls, 0);
  ASSERT_EQ(rf.expert_counts.size(), size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l)
    for (int e = 0; e < c.num_experts; ++e)
      EXPECT_EQ(rf.expert_counts[size_t(l)][size_t(e)], seen[size_t(l)][size_t(e)]) << "layer " << l << " e " << e;
  EXPECT_EQ(rf.tokens, rh.tokens);
  // Each path's logits lie within kTolBf16 · max|logit| of the CPU model's, so within twice that of each other.
  m.forward(s.tokens.data(), 4, 40);
  double max_logit = 0;
  for (float x : m.download_logits()) max_logit = std::max(max_logit, double(std::abs(x)));
  EXPECT_NEAR(rf.nats_per_token(), rh.nats_per_token(), 2 * 2 * kTolBf16 * max_logit);
  std::printf("[fused]  eval nats/token fused %.6f host %.6f\n", rf.nats_per_token(), rh.nats_per_token());
}

}  // namespace
}  // namespace wattmoe
