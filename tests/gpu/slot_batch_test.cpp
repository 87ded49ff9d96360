// The batched step of continuous batching on the GPU: one new token for each of several slots at different lengths.
//   Ops:   cuda::rope_apply_at (each row its own position) against ops::rope_apply of one token at that position
//          (fp32 bit for bit: the same explicit roundings); cuda::kv_append_rows writes each row at its slot's position
//          and nothing else (the rest of every cache keeps its poison); cuda::attention_rows_fwd against
//          ops::attention_fwd of one query at position pos over that row's cache (Tq 1, Tk pos + 1), on fresh random
//          inputs into a NaN-poisoned output, with GQA groups 1–4, head sizes 6–256, padded row strides and
//          lengths 1 (a fresh slot) to 700. Tolerances: fp32 a reduction's (dot products, softmax sums over ≤ 700
//          keys: 2e-5); bf16 one rounding of the output (inputs are exact bf16 on both sides, P stays fp32): 1.1·2^-8.
//   Model: TransformerCudaT::forward_slots over slots of lengths 5, 0 and 2 (then one longer each step), against the
//          CPU model decoding each row alone with its own KvCache: fp32 with host routing (routing rows equal, logits
//          within 2e-5) on the parity configs with odd sizes (GQA, OLMoE's q/k norm and clip, Qwen2-MoE's shared
//          expert and dense layer, a routing policy that uses fewer slots for some tokens); bf16 on the fused MoE kernels on eligible configs, the CPU
//          replaying each row's fused selection (logits within 3e-2, the bf16 bound of model_parity_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../moe/model_gradcheck.h"
#include "../test_util.h"
#include "core/error.h"
#include "dense_test_util.h"
#include "gpu/transformer_cuda.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "model_compare.h"
#include "ops/attention.h"
#include "ops/cuda/dense_ops.h"
#include "ops/rope.h"

namespace wattmoe {
namespace {

using cuda::test::ctx;
using cuda::test::expect_close;
using cuda::test::from_dev;
using cuda::test::kBf16;
using cuda::test::random_t;
using cuda::test::tname;
using cuda::test::to_dev;
using cuda::test::Vec;
using cuda::bf16;

std::string name_of(const char* op, const char* dt, int64_t n, int64_t nh, int64_t nkv, int64_t hd) {
  return std::string(op) + "." + dt + " n" + std::to_string(n) + " h" + std::to_string(nh) + "/" +
         std::to_string(nkv) + " hd" + std::to_string(hd);
}

template <class T>
void rows_case(const std::vector<int32_t>& pos, int64_t nh, int64_t nkv, int64_t hd, int64_t q_extra,
               int64_t kv_extra, uint64_t seed) {
  Rng rng(seed);
  const int64_t n = int64_t(pos.size()), q_stride = nh * hd + q_extra, kv_stride = nkv * hd + kv_extra;
  const int64_t kvd = nkv * hd, cap = 701;
  const std::string name = name_of("rows", tname<T>(), n, nh, nkv, hd);
  // Each row's cache: pos rows of history (random), then the new row at pos, then poison up to the capacity.
  Vec q = random_t<T>(rng, size_t(n * q_stride), 1.5), k_new = random_t<T>(rng, size_t(n * kvd), 1.5),
      v_new = random_t<T>(rng, size_t(n * kvd));
  std::vector<Vec> kc(static_cast<size_t>(n)), vc(static_cast<size_t>(n));
  std::vector<cuda::DeviceBuffer<T>> dk, dv;
  for (int64_t r = 0; r < n; ++r) {
    kc[size_t(r)] = Vec(size_t(cap * kv_stride), NAN), vc[size_t(r)] = Vec(size_t(cap * kv_stride), NAN);
    const Vec hk = random_t<T>(rng, size_t(pos[size_t(r)] * kv_stride), 1.5),
              hv = random_t<T>(rng, size_t(pos[size_t(r)] * kv_stride));
    std::copy(hk.begin(), hk.end(), kc[size_t(r)].begin()), std::copy(hv.begin(), hv.end(), vc[size_t(r)].begin());
    dk.push_back(to_dev<T>(kc[size_t(r)])), dv.push_back(to_dev<T>(vc[size_t(r)]));
    for (int64_t i = 0; i < kvd; ++i)  // the CPU's caches get the new row where the GPU must append it
      kc[size_t(r)][size_t(pos[size_t(r)] * kv_stride + i)] = k_new[size_t(r * kvd + i)],
      vc[size_t(r)][size_t(pos[size_t(r)] * kv_stride + i)] = v_new[size_t(r * kvd + i)];
  }
  // The CPU reference, one query row at a time (ops::attention_fwd writes a row of q_stride).
  Vec want(size_t(n * nh * hd));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t p = pos[size_t(r)];
    const ops::AttnShape s{1, p + 1, p, nh, nkv, hd, q_stride, kv_stride};
    Vec o(size_t(q_stride), 0.f);
    ops::attention_fwd<float>(q.data() + r * q_stride, kc[size_t(r)].data(), vc[size_t(r)].data(), o.data(), nullptr,
                              s);
    std::copy_n(o.begin(), nh * hd, want.begin() + r * nh * hd);
  }
  std::vector<T*> kp, vp;
  for (int64_t r = 0; r < n; ++r) kp.push_back(dk[size_t(r)].data()), vp.push_back(dv[size_t(r)].data());
  cuda::DeviceBuffer<T*> dkp, dvp;
  cuda::DeviceBuffer<int32_t> dpos;
  dkp.upload(kp, ctx().stream()), dvp.upload(vp, ctx().stream()), dpos.upload(pos, ctx().stream());
  auto dq = to_dev<T>(q), dkn = to_dev<T>(k_new), dvn = to_dev<T>(v_new);
  // kv_append_rows takes dense [n, kvd] rows and writes them at row pos of a cache of kv_stride: with padding the
  // cache's padding columns keep their poison (the CPU copies above touch only the kvd columns too).
  if (kv_extra == 0) {
    cuda::kv_append_rows<T>(ctx(), dkn.data(), dvn.data(), n, kvd, dkp.data(), dvp.data(), dpos.data());
    for (int64_t r = 0; r < n; ++r) {  // every cache equals the CPU's, poison included (NaN compared as NaN)
      const Vec gk = from_dev(dk[size_t(r)]), gv = from_dev(dv[size_t(r)]);
      size_t bad = 0;
      for (size_t i = 0; i < gk.size(); ++i) {
        const float a = kc[size_t(r)][i], b = vc[size_t(r)][i];
        bad += !((std::isnan(a) && std::isnan(gk[i])) || a == gk[i]) + !((std::isnan(b) && std::isnan(gv[i])) || b == gv[i]);
      }
      EXPECT_EQ(bad, 0u) << name << " append: row " << r << " cache differs in " << bad << " values";
    }
  } else {
    for (int64_t r = 0; r < n; ++r) dk[size_t(r)] = to_dev<T>(kc[size_t(r)]), dv[size_t(r)] = to_dev<T>(vc[size_t(r)]);
    kp.clear(), vp.clear();
    for (int64_t r = 0; r < n; ++r) kp.push_back(dk[size_t(r)].data()), vp.push_back(dv[size_t(r)].data());
    dkp.upload(kp, ctx().stream()), dvp.upload(vp, ctx().stream());
  }
  auto out = cuda::test::nan_dev<T>(want.size());
  cuda::attention_rows_fwd<T>(ctx(), dq.data(), q_stride, dkp.data(), dvp.data(), kv_stride, dpos.data(), out.data(), n,
                              nh, nkv, hd);
  expect_close(name + " out", from_dev(out), want, kBf16<T> ? 1.1 * 0x1p-8 : 2e-5);
}

template <class T>
void rows_all() {
  REQUIRE_GPU();
  uint64_t seed = 900;
  rows_case<T>({0}, 1, 1, 6, 0, 0, seed++);                          // one row, a fresh slot (one key)
  rows_case<T>({5, 0, 2}, 4, 2, 6, 0, 0, seed++);                    // the model test's lengths, GQA 2
  rows_case<T>({1, 2, 3, 4, 699}, 3, 1, 40, 8, 0, seed++);           // group 3, padded q rows, a long cache
  rows_case<T>({37, 0, 250, 13}, 4, 4, 64, 0, 16, seed++);           // no GQA, padded kv rows
  rows_case<T>({100, 3}, 8, 2, 128, 0, 0, seed++);                   // group 4, hd 128
  rows_case<T>({17, 64, 0}, 2, 1, 256, 0, 0, seed++);                // the largest head
  std::vector<int32_t> many;
  for (int r = 0; r < 33; ++r) many.push_back((r * 37) % 300);       // a served batch of 33 rows
  rows_case<T>(many, 4, 2, 32, 0, 0, seed++);
}
TEST(SlotBatchCuda, AttentionRowsF32) { rows_all<float>(); }
TEST(SlotBatchCuda, AttentionRowsBf16) { rows_all<bf16>(); }

TEST(SlotBatchCuda, AttentionRowsRejectsBadShapes) {
  REQUIRE_GPU();
  EXPECT_THROW(cuda::attention_rows_fwd<float>(ctx(), nullptr, 6, nullptr, nullptr, 6, nullptr, nullptr, 1, 3, 2, 2),
               Error);  // 3 % 2 != 0
  EXPECT_THROW(cuda::attention_rows_fwd<float>(ctx(), nullptr, 600, nullptr, nullptr, 600, nullptr, nullptr, 1, 2, 1,
                                               300),
               Error);  // hd > 256
}

template <class T>
void rope_at_case(const std::vector<int32_t>& pos, int64_t nh, int64_t hd, int64_t extra, uint64_t seed) {
  Rng rng(seed);
  const int64_t n = int64_t(pos.size()), stride = nh * hd + extra;
  const ops::RopeTable tab = ops::rope_table(0, 512, hd, 10000.0);
  cuda::DeviceRope dtab;
  dtab.upload(ctx(), tab);
  Vec x = random_t<T>(rng, size_t(n * stride)), want = x;
  for (int64_t r = 0; r < n; ++r) ops::rope_apply<float>(want.data() + r * stride, 1, nh, hd, stride, tab, pos[size_t(r)], false);
  auto dx = to_dev<T>(x);
  cuda::DeviceBuffer<int32_t> dpos;
  dpos.upload(pos, ctx().stream());
  cuda::rope_apply_at<T>(ctx(), dx.data(), n, nh, hd, stride, dtab, dpos.data(), false);
  expect_close(name_of("rope_at", tname<T>(), n, nh, nh, hd), from_dev(dx), want, kBf16<T> ? 1.1 * 0x1p-8 : 0.0);
}

TEST(SlotBatchCuda, RopeAtEachRowsPosition) {
  REQUIRE_GPU();
  rope_at_case<float>({0, 511, 7, 7, 100}, 3, 40, 8, 950);
  rope_at_case<bf16>({0, 511, 7, 7, 100}, 3, 40, 8, 951);
  rope_at_case<float>({3}, 4, 6, 0, 952);
}

// ---------------------------------------------------------------------------------------------------------------
// The model's batched step against the CPU model, row by row.

struct ModelCase {
  std::string name;
  ModelConfig config;
  RouterSelect<float> select;
};

ModelConfig with_sizes(ModelConfig c, int V, int H, int heads, int kv, int hd, int I, int E, int k) {
  c.vocab_size = V, c.hidden_size = H, c.num_heads = heads, c.num_kv_heads = kv, c.head_dim = hd;
  c.intermediate_size = c.moe_intermediate_size = I, c.num_experts = E, c.top_k = k;
  if (c.shared_expert_intermediate_size > 0) c.shared_expert_intermediate_size = I + 8;
  return c;
}

// Each row's routing of the last forward as its own one-token Routing per layer (for replay on the CPU).
template <class Model>
std::vector<std::vector<Routing>> routing_rows(const Model& m, int n) {
  std::vector<std::vector<Routing>> out(static_cast<size_t>(n));
  for (int l = 0; l < m.config().num_layers; ++l) {
    const Routing& all = m.routing(l).routing;
    for (int r = 0; r < n; ++r) {
      Routing one;
      if (all.tokens > 0) {
        one.reset(1, all.k, all.experts);
        std::copy_n(all.expert.begin() + r * all.k, all.k, one.expert.begin());
        one.recount();
      }
      out[size_t(r)].push_back(one);
    }
  }
  return out;
}

// test::dead_expert_policy drops the second slot by token index (every third token of a forward), which differs
// between a batch of rows and one row at a time; this one decides by value alone: the top-2 over experts 0 .. E−2
// (expert E−1 never used), one slot when the best probability exceeds 0.4.
RouterSelect<float> dead_expert_by_value(int E) {
  return [E](int, const float*, const float* probs, int64_t n, Routing& out) {
    out.reset(n, 2, E);
    for (int64_t t = 0; t < n; ++t) {
      const float* p = probs + t * E;
      int best = 0, second = -1;
      for (int e = 1; e < E - 1; ++e)
        if (p[e] > p[best]) second = best, best = e;
        else if (second < 0 || p[e] > p[second]) second = e;
      out.expert[size_t(t * 2)] = best;
      out.expert[size_t(t * 2 + 1)] = p[best] > 0.4f ? -1 : second;
    }
    out.recount();
  };
}

template <class Model>
void slot_batch_case(const ModelCase& k, bool fused) {
  SCOPED_TRACE(k.name);
  const ModelConfig& c = k.config;
  cuda::Context cx;
  const Transformer<float> cpu(c);
  std::vector<float> p = test::random_params<float>(cpu.layout(), 71 + c.num_experts);
  if (fused)
    for (float& x : p) x = bf16_to_f32(f32_to_bf16(x));
  Model m(c, cx);
  m.upload_params(p.data());
  if (fused) {
    ASSERT_EQ(m.fused_moe_unsupported(), "");
    m.set_moe_kernels(gpu::MoeKernels::Fused);
  }
  constexpr int kSlots = 4, kCap = 16;
  m.reset_slots(kSlots, kCap);
  std::vector<KvCache<float>> caches(kSlots, KvCache<float>(c.num_layers, kCap, c.kv_dim()));
  Activations<float> acts;
  // Prefill: slot 2 with 5 tokens, slot 0 with 2 (the CPU decodes the same into its caches).
  const std::vector<int32_t> prompt = test::random_ids(5, c.vocab_size, 80);
  for (auto [slot, S] : {std::pair{2, 5}, std::pair{0, 2}}) {
    m.forward_slot(slot, prompt.data(), S, k.select);
    std::vector<Routing> chosen;  // the fused selection, replayed on the CPU
    for (int l = 0; l < c.num_layers && fused; ++l) chosen.push_back(m.routing(l).routing);
    cpu.forward(p.data(), prompt.data(), 1, S, acts, &caches[size_t(slot)], fused ? test::replay(chosen) : k.select);
  }
  const std::vector<int32_t> slots = {2, 3, 0};  // lengths 5, 0, 2
  const int n = int(slots.size());
  double worst = 0;
  for (int step = 0; step < 4; ++step) {
    const std::vector<int32_t> ids = test::random_ids(n, c.vocab_size, 81 + step);
    m.forward_slots(slots.data(), ids.data(), n, k.select);
    ASSERT_EQ(m.tokens(), n);
    const std::vector<float> got = m.download_logits();
    ASSERT_EQ(got.size(), size_t(n) * size_t(c.vocab_size));
    std::vector<std::vector<Routing>> rows;
    if (fused) rows = routing_rows(m, n);
    for (int r = 0; r < n; ++r) {
      const int slot = slots[size_t(r)];
      cpu.forward(p.data(), &ids[size_t(r)], 1, 1, acts, &caches[size_t(slot)],
                  fused ? test::replay(rows[size_t(r)]) : k.select);
      const std::vector<float> row(got.begin() + size_t(r) * c.vocab_size, got.begin() + size_t(r + 1) * c.vocab_size);
      const double e = test::norm_err(row, acts.logits);
      EXPECT_LE(e, fused ? 3e-2 : 2e-5) << "step " << step << " row " << r << " (slot " << slot << ")";
      worst = std::max(worst, e);
      for (int l = 0; l < c.num_layers && !fused; ++l) {
        const Routing& all = m.routing(l).routing;
        if (all.tokens == 0) continue;
        const std::vector<int32_t> mine(all.expert.begin() + r * all.k, all.expert.begin() + (r + 1) * all.k);
        EXPECT_EQ(mine, acts.layers[size_t(l)].routing.expert) << "step " << step << " row " << r << " layer " << l;
      }
    }
  }
  // The slots moved on by one per step; a full slot and a repeated slot are refused.
  const int32_t id = 1, twice[2] = {1, 1};
  EXPECT_THROW(m.forward_slots(twice, twice, 2, k.select), Error);
  for (int i = 0; i < kCap - 4; ++i) m.forward_slots(&slots[1], &id, 1, k.select);  // slot 3: 4 → 16
  EXPECT_THROW(m.forward_slots(&slots[1], &id, 1, k.select), Error);
  std::printf("[slots] %-30s %s batched step vs CPU per row %.2e\n", k.name.c_str(), fused ? "bf16 fused" : "fp32",
              worst);
}

TEST(SlotBatchCuda, Fp32BatchedStepMatchesCpuRowByRow) {
  REQUIRE_GPU();
  ModelConfig dead = with_sizes(test::mixtral_config(2), 53, 37, 4, 2, 6, 23, 6, 2);
  const std::vector<ModelCase> cases = {
      {"mixtral_gqa", with_sizes(test::mixtral_config(2), 53, 37, 4, 2, 6, 23, 5, 2), nullptr},
      {"olmoe_qknorm_clip", with_sizes(test::olmoe_config(2, 0.9), 41, 30, 3, 1, 10, 13, 6, 2), nullptr},
      {"qwen2moe_shared_dense0", with_sizes(test::qwen2moe_config(3), 47, 33, 4, 1, 8, 7, 5, 2), nullptr},
      {"mixtral_dead_expert_policy", dead, dead_expert_by_value(6)}};
  for (const ModelCase& k : cases) slot_batch_case<gpu::TransformerCuda>(k, false);
}

TEST(SlotBatchCuda, Bf16FusedBatchedStepMatchesCpuRowByRow) {
  REQUIRE_GPU();
  const std::vector<ModelCase> cases = {
      {"mixtral_fused", with_sizes(test::mixtral_config(2), 61, 40, 4, 2, 10, 24, 6, 2), nullptr},
      {"olmoe_fused", with_sizes(test::olmoe_config(2, 0.9), 59, 48, 3, 1, 16, 16, 5, 1), nullptr},
      {"qwen2moe_fused", with_sizes(test::qwen2moe_config(2), 43, 32, 4, 2, 8, 16, 7, 3), nullptr}};
  for (const ModelCase& k : cases) slot_batch_case<gpu::TransformerCudaBf16>(k, true);
}

}  // namespace
}  // namespace wattmoe
