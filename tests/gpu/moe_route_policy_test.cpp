// Routing policies on the device (MoeLayerCuda with a MoeRoutePolicy block, ops/moe_route_policy.h) against the CPU
// policies (moe/policy.h, the reference) run on the layer's own logits and fp32 probabilities:
//  (a) expert ids [T,S] and counts equal the CPU policy's exactly (slot order, -1 suffix, ties to the lower index),
//      weights equal route_weights<float> on the same probabilities within 1 fp32 ulp (the kernels perform the same
//      fp32 operations in the same order — a slot-order sum and one IEEE division — so they should be bitwise equal;
//      the test reports any that are not);
//  (b) the layer's output equals the CPU reference of the layer for that routing (moe_layer_harness.h), with the
//      output poisoned (bf16 NaN) before every forward, so tokens and slots that the kernels skip must still be right.
// Every policy with several knob values, on adversarial routing (an expert with no token, every token on one expert,
// exact ties of every logit or of expert pairs), masks leaving fewer than K experts or just one, k = 1 and K = E,
// token counts that are not tile multiples across the decode, 64-row and 128-row paths, and the exact limits where
// a policy equals topk (λ = 0, p = 1 with k_min = K, β = 0, budget = inf) or top-k_min (budget = 0). Plus: knob
// changes between CUDA-graph replays (own block and a caller-owned device block), bad knobs rejected with the knob
// named, and a corrupt device block clamped and reported instead of read out of bounds.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "../ops/moe_route_policy_util.h"
#include "core/error.h"
#include "core/rng.h"
#include "moe/policy.h"
#include "moe/routing.h"
#include "moe_layer_harness.h"
#include "ops/cuda/moe_kernels.h"
#include "ops/moe_cuda.h"
#include "ops/moe_route_policy_check.h"
#include "ops/softmax.h"

namespace wattmoe {
namespace {

using test::fb;
using test::Route;
using test::to_host;
using test::Weights;

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

constexpr double kInf = std::numeric_limits<double>::infinity();

enum class Costs { None, Zero, Random, Skewed, Dyadic };
enum class Mask { None, Some, FewerThanK, One };

struct PolicyCase {
  std::string name;
  int T = 8, H = 64, I = 64, E = 8, k = 2;
  int S = 0;  // MoeShape::max_slots (0 = k)
  bool renorm = true;
  int block_m = 0;  // -1: decode kernels (T <= 8), 0: auto, 64 or 128: prefill with that tile (128: sm_90 only)
  Route route = Route::Random;
  std::string policy = "topk";
  float lambda = 0.f, p = 1.f, beta = 0.f;
  int k_min = 1, k_max = 0, reuse = 0;
  double budget = kInf;
  double budget_frac = -1;  // >= 0: budget = frac · (Σ_e a_e + T·K·mean_e b_e), a scale where budgets bind
  Costs costs = Costs::None;
  Mask mask = Mask::None;
  bool equals_topk = false;    // the CPU policy must equal topk at K here (a limit the policy header promises)
  bool equals_topkmin = false;  // ... or topk at k_min (budget 0 with positive costs)
};

std::ostream& operator<<(std::ostream& os, const PolicyCase& c) { return os << c.name; }

int slots_of(const PolicyCase& c) { return c.S ? c.S : c.k; }
int K_of(const PolicyCase& c) { return c.k_max ? c.k_max : c.k; }

ExpertCosts make_costs(const PolicyCase& c, uint64_t seed) {
  ExpertCosts out;
  const int E = c.E;
  Rng rng(seed ^ 0xc057c057ull);
  for (int e = 0; e < E; ++e) {
    float a = 0.f, b = 0.f;
    switch (c.costs) {
      case Costs::None: return out;
      case Costs::Zero: break;
      case Costs::Random:
        a = float(0.2 + 3.0 * rng.uniform()), b = float(0.005 + 0.2 * rng.uniform());
        break;
      case Costs::Skewed:  // expert 0 fifty times dearer, expert 1 free (price 0: weight per joule = inf)
        a = float(0.2 + 3.0 * rng.uniform()), b = float(0.005 + 0.2 * rng.uniform());
        if (e == 0) a *= 50.f, b *= 50.f;
        if (e == 1) a = 0.f, b = 0.f;
        break;
      case Costs::Dyadic:  // exact sums, many equal prices (ties of weight per joule)
        a = 0.25f * float(e % 3 + 1), b = 0.0625f * float(e % 2 + 1);
        break;
    }
    out.fixed.push_back(a), out.per_token.push_back(b);
  }
  return out;
}

std::vector<bool> make_mask(const PolicyCase& c) {
  const int E = c.E, K = K_of(c);
  std::vector<bool> m;
  switch (c.mask) {
    case Mask::None: break;
    case Mask::Some:  // experts 1 and E-1
      m.assign(size_t(E), false);
      m[1 % E] = true;
      if (E > 2) m[size_t(E - 1)] = true;
      break;
    case Mask::FewerThanK: {  // K-1 experts left (at least one): the last ones, every other
      m.assign(size_t(E), true);
      const int left = std::max(1, K - 1);
      for (int i = 0; i < left; ++i) m[size_t(E - 1 - 2 * i)] = false;
      break;
    }
    case Mask::One:
      m.assign(size_t(E), true);
      m[size_t(E / 2)] = false;
      break;
  }
  return m;
}

PolicyKnobs make_knobs(const PolicyCase& c, const ExpertCosts& costs) {
  PolicyKnobs kn;
  kn.lambda = c.lambda, kn.p = c.p, kn.beta = c.beta, kn.k_min = c.k_min, kn.k_max = c.k_max;
  kn.reuse_min_tokens = c.reuse;
  kn.mask = make_mask(c);
  kn.budget_j = c.budget;
  if (c.budget_frac >= 0) {
    double a = 0, b = 0;
    for (size_t e = 0; e < costs.fixed.size(); ++e) a += costs.fixed[e], b += costs.per_token[e];
    kn.budget_j = c.budget_frac * (a + double(c.T) * K_of(c) * b / double(c.E));
  }
  return kn;
}

struct LayerRun {
  std::vector<uint16_t> out, logits;
  std::vector<float> probs, w;
  std::vector<int32_t> ids, counts;
  int faults = 0;
};

std::unique_ptr<MoeLayerCuda> make_layer(const PolicyCase& c, const Weights& w, int sm90_kernel = 0) {
  MoeCudaOptions opt;
  opt.decode_max_tokens = c.block_m < 0 ? 8 : 0;
  opt.block_m = c.block_m > 0 ? c.block_m : 0;
  opt.sm90_kernel = sm90_kernel;
  MoeShape shape{c.H, c.I, c.E, c.k, c.renorm, c.S};
  auto layer = std::make_unique<MoeLayerCuda>(shape, c.T, opt);
  layer->upload(w.router.data(), w.gate.data(), w.up.data(), w.down.data());
  return layer;
}

// Poisons out, runs one forward of x (device) and downloads everything.
LayerRun forward_and_download(MoeLayerCuda& layer, const PolicyCase& c, const void* dx, void* dout, cudaStream_t s) {
  const size_t nx = size_t(c.T) * c.H, S = size_t(layer.slots());
  EXPECT_EQ(cudaMemsetAsync(dout, 0xff, nx * 2, s), cudaSuccess);  // 0xffff: a bf16 NaN, so unwritten outputs show
  layer.forward(dx, dout, c.T, s);
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  LayerRun r;
  r.out = to_host(static_cast<const uint16_t*>(dout), nx);
  r.logits = to_host(layer.router_logits(), size_t(c.T) * c.E);
  r.probs = to_host(layer.router_probs(), size_t(c.T) * c.E);
  r.ids = to_host(layer.topk_ids(), size_t(c.T) * S);
  r.w = to_host(layer.topk_weights(), size_t(c.T) * S);
  r.counts = to_host(layer.expert_counts(), size_t(c.E));
  r.faults = layer.route_policy_faults();
  return r;
}

struct DeviceIO {
  void *x = nullptr, *out = nullptr;
  DeviceIO(const std::vector<uint16_t>& hx, int T, int H) {
    const size_t n = size_t(T) * H * 2;
    EXPECT_EQ(cudaMalloc(&x, n), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&out, n), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(x, hx.data(), n, cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceIO() {
    cudaFree(x);
    cudaFree(out);
  }
  DeviceIO(const DeviceIO&) = delete;
  DeviceIO& operator=(const DeviceIO&) = delete;
};

// One token's experts for a failure message: id, logit, fp32 probability (with its bits) of every expert.
std::string dump_token(const LayerRun& r, int t, int E, const PolicyKnobs& kn) {
  std::ostringstream os;
  os << "\n  token " << t << " experts (e: logit prob):";
  for (int e = 0; e < E; ++e) {
    const float p = r.probs[size_t(t) * E + e];
    uint32_t bits;
    std::memcpy(&bits, &p, 4);
    os << (e % 4 ? "  " : "\n    ") << e << ": " << fb(r.logits[size_t(t) * E + e]) << " " << p << " (0x" << std::hex
       << bits << std::dec << ")" << (!kn.mask.empty() && kn.mask[size_t(e)] ? " masked" : "");
  }
  return os.str();
}

// (a) and (b) for one forward's downloads against the CPU policy on the same logits and probabilities.
void check_against_cpu(const PolicyCase& c, const Weights& w, const std::vector<uint16_t>& x, const LayerRun& r,
                       const PolicyKnobs& kn, const ExpertCosts& costs) {
  const int T = c.T, E = c.E, S = slots_of(c);
  ASSERT_EQ(r.faults, 0) << "the kernels saw an invalid policy block";
  // The layer's probabilities against the double softmax of its logits (moe_layer_test.cpp derives the bound).
  std::vector<float> lg(size_t(T) * E);
  std::vector<double> lgd(size_t(T) * E), pd(size_t(T) * E);
  for (size_t i = 0; i < lg.size(); ++i) lg[i] = float(fb(r.logits[i])), lgd[i] = lg[i];
  ops::softmax_fwd<double>(lgd.data(), pd.data(), T, E);
  for (size_t i = 0; i < pd.size(); ++i)
    ASSERT_NEAR(r.probs[i], pd[i], std::ldexp(16.0 + E, -24) * pd[i] + 1e-37) << "prob t=" << i / E << " e=" << i % E;

  // (a) the CPU policy on the layer's own logits and probabilities.
  Routing cpu;
  make_policy(c.policy)->select(lg.data(), r.probs.data(), T, E, c.k, costs, kn, cpu);
  const int K = cpu.k;
  ASSERT_EQ(K, K_of(c));
  ASSERT_LE(K, S);
  int bad_rows = 0;
  for (int t = 0; t < T; ++t) {
    bool same = true;
    for (int s = 0; s < S; ++s) same = same && r.ids[size_t(t) * S + s] == (s < K ? cpu.expert[size_t(t) * K + s] : -1);
    if (!same && bad_rows++ < 4) {
      std::ostringstream g, h;
      for (int s = 0; s < S; ++s) g << " " << r.ids[size_t(t) * S + s];
      for (int s = 0; s < K; ++s) h << " " << cpu.expert[size_t(t) * K + s];
      ADD_FAILURE() << "token " << t << ": gpu ids [" << g.str() << " ] cpu [" << h.str() << " ]"
                    << dump_token(r, t, E, kn);
    }
  }
  ASSERT_EQ(bad_rows, 0) << bad_rows << " of " << T << " tokens routed differently from the CPU policy";
  EXPECT_EQ(r.counts, cpu.counts) << "expert counts";

  // Weights: route_weights<float> on the same probabilities, mapped to the layer's S slots.
  std::vector<float> wk(size_t(T) * K);
  route_weights<float>(cpu, r.probs.data(), c.renorm, wk.data());
  std::vector<double> wref(size_t(T) * S, 0.0);
  int not_bitwise = 0;
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < S; ++s) {
      const float want = s < K ? wk[size_t(t) * K + s] : 0.f, got = r.w[size_t(t) * S + s];
      wref[size_t(t) * S + s] = want;
      not_bitwise += got != want;
      const float ulp = want != 0.f ? std::nextafter(std::fabs(want), 2.f) - std::fabs(want) : 1e-45f;
      ASSERT_LE(std::fabs(got - want), ulp) << "weight t=" << t << " s=" << s << " gpu=" << got << " cpu=" << want;
    }
  if (not_bitwise) std::printf("[ note     ] %s: %d weights differ from route_weights<float> by 1 ulp\n", c.name.c_str(), not_bitwise);

  // Limits the policy header promises (these check the reference itself, which the GPU equals).
  if (c.equals_topk || c.equals_topkmin) {
    PolicyKnobs tk;
    tk.k_max = c.equals_topk ? K : c.k_min;
    tk.mask = kn.mask;
    Routing ref;
    make_policy("topk")->select(lg.data(), r.probs.data(), T, E, c.k, {}, tk, ref);
    for (int t = 0; t < T; ++t)
      for (int s = 0; s < K; ++s) {
        const int want = s < ref.k ? ref.expert[size_t(t) * ref.k + s] : -1;
        ASSERT_EQ(cpu.expert[size_t(t) * K + s], want) << "limit case differs from topk at t=" << t << " s=" << s;
      }
  }
  // Masked experts never appear.
  for (size_t i = 0; i < r.ids.size(); ++i) {
    if (r.ids[i] >= 0 && !kn.mask.empty()) {
      ASSERT_FALSE(kn.mask[size_t(r.ids[i])]) << "masked expert routed";
    }
  }

  // (b) the output.
  test::check_layer_output(T, c.H, c.I, S, w, x, r.out, r.ids, wref);
}

class MoeRoutePolicyTest : public ::testing::TestWithParam<PolicyCase> {};

TEST_P(MoeRoutePolicyTest, MatchesCpuPolicy) {
  const PolicyCase& c = GetParam();
  const uint64_t seed = std::hash<std::string>{}(c.name);
  Weights w;
  std::vector<uint16_t> x;
  test::make_inputs(c.T, c.H, c.I, c.E, c.route, seed, w, x);
  const ExpertCosts costs = make_costs(c, seed);
  const PolicyKnobs kn = make_knobs(c, costs);
  auto layer = make_layer(c, w);
  DeviceIO io(x, c.T, c.H);
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  layer->set_route_policy(test::to_route_policy(c.policy, kn, costs, c.E), s);
  const LayerRun r = forward_and_download(*layer, c, io.x, io.out, s);
  {
    SCOPED_TRACE("policy " + c.policy + ", budget_j " + std::to_string(kn.budget_j));
    check_against_cpu(c, w, x, r, kn, costs);
  }
  if (HasFatalFailure()) {
    cudaStreamDestroy(s);
    return;
  }
  // The same forward again: bitwise the same (no atomics in the data path; counts are integers).
  const LayerRun again = forward_and_download(*layer, c, io.x, io.out, s);
  EXPECT_EQ(again.ids, r.ids);
  EXPECT_EQ(again.w, r.w);
  EXPECT_EQ(again.out, r.out);
  // 128-row tiles: the TMA kernels (2: one CTA per tile, 3: clusters of 2) give the cp.async kernel's bits here too.
  if (c.block_m == 128 && c.T >= 65) {
    int major = 0;
    CUDA_OK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    if (major == 9)
      for (int v : {1, 3}) {
        auto lv = make_layer(c, w, v);
        lv->set_route_policy(test::to_route_policy(c.policy, kn, costs, c.E), s);
        const LayerRun rv = forward_and_download(*lv, c, io.x, io.out, s);
        EXPECT_EQ(rv.ids, r.ids) << "sm90_kernel " << v;
        EXPECT_EQ(rv.out, r.out) << "sm90_kernel " << v;
      }
  }
  cudaStreamDestroy(s);
}

// The case table: each policy family with its knob values, crossed with token counts and paths.
std::vector<PolicyCase> all_cases() {
  std::vector<PolicyCase> v;
  struct Shape {
    int T, block_m;
  };
  const Shape decode[] = {{1, -1}, {3, -1}, {7, -1}, {8, -1}};
  const Shape prefill[] = {{9, 64}, {63, 64}, {65, 128}, {300, 128}, {1030, 0}};
  const Shape few[] = {{8, -1}, {65, 64}, {300, 128}};
  auto tag = [](const Shape& s) {
    return "_T" + std::to_string(s.T) +
           (s.block_m < 0 ? "_dec" : s.block_m == 0 ? "_auto" : "_b" + std::to_string(s.block_m));
  };
  auto add = [&](PolicyCase c, const Shape& s) {
    c.T = s.T, c.block_m = s.block_m;
    c.name += tag(s);
    v.push_back(c);
  };
  auto add_all = [&](const PolicyCase& c) {
    for (const Shape& s : decode) add(c, s);
    for (const Shape& s : prefill) add(c, s);
  };
  auto add_few = [&](const PolicyCase& c) {
    for (const Shape& s : few) add(c, s);
  };
  PolicyCase c;

  // --- topk / mask -------------------------------------------------------------------------------------------------
  c = {};
  c.name = "topk_k2", c.policy = "topk";
  add_all(c);
  c = {}, c.name = "topk_K4_of_S4", c.S = 4, c.k_max = 4;
  add_few(c);
  c = {}, c.name = "topk_K3_of_S6", c.S = 6, c.k_max = 3, c.renorm = false;  // slots past K stay -1
  add_few(c);
  c = {}, c.name = "topk_KE", c.E = 4, c.S = 4, c.k_max = 4;
  add(c, {7, -1}), add(c, {130, 64});
  c = {}, c.name = "topk_k1", c.E = 6, c.k = 1, c.renorm = false;
  add(c, {1, -1}), add(c, {9, 64}), add(c, {129, 128});
  c = {}, c.name = "topk_E40_mask", c.E = 40, c.k = 3, c.S = 6, c.k_max = 5, c.mask = Mask::Some;
  add(c, {8, -1}), add(c, {100, 64});
  c = {}, c.name = "topk_E256", c.E = 256, c.k = 2, c.S = 8, c.k_max = 8;
  add(c, {5, -1}), add(c, {65, 64});
  for (Route rt : {Route::OneExpert, Route::DeadExpert, Route::AllTie, Route::PairTie}) {
    c = {}, c.route = rt, c.S = 4, c.k_max = 3;
    c.name = std::string("topk_route") + char('0' + int(rt));
    add(c, {8, -1}), add(c, {200, 64});
  }
  c = {}, c.name = "mask_some", c.policy = "mask", c.S = 4, c.k_max = 3, c.mask = Mask::Some;
  add(c, {7, -1}), add(c, {65, 64});
  c = {}, c.name = "mask_fewer_than_K", c.policy = "mask", c.S = 4, c.k_max = 4, c.mask = Mask::FewerThanK;
  add(c, {8, -1}), add(c, {300, 128});
  c = {}, c.name = "mask_one_left", c.policy = "mask", c.S = 4, c.k_max = 4, c.mask = Mask::One;
  add(c, {3, -1}), add(c, {129, 128});

  // --- cost --------------------------------------------------------------------------------------------------------
  c = {}, c.name = "cost_l0", c.policy = "cost", c.costs = Costs::Random, c.equals_topk = true;
  add(c, {8, -1}), add(c, {300, 128});
  c = {}, c.name = "cost_l0p5", c.policy = "cost", c.lambda = 0.5f, c.costs = Costs::Random;
  add_all(c);
  c = {}, c.name = "cost_l2_skewed", c.policy = "cost", c.lambda = 2.f, c.costs = Costs::Skewed, c.S = 4, c.k_max = 3;
  add(c, {9, 64}), add(c, {300, 128});
  c = {}, c.name = "cost_l1_zero_costs", c.policy = "cost", c.lambda = 1.f, c.costs = Costs::Zero;  // by logit
  add(c, {8, -1}), add(c, {100, 64});
  c = {}, c.name = "cost_l4_dyadic_alltie", c.policy = "cost", c.lambda = 4.f, c.costs = Costs::Dyadic;
  c.route = Route::AllTie, c.S = 4, c.k_max = 4;
  add(c, {8, -1}), add(c, {70, 64});
  c = {}, c.name = "cost_l1_dyadic_pairtie", c.policy = "cost", c.lambda = 1.f, c.costs = Costs::Dyadic;
  c.route = Route::PairTie, c.S = 3, c.k_max = 3;
  add(c, {64, 64});
  c = {}, c.name = "cost_reuse1", c.policy = "cost", c.lambda = 1.f, c.reuse = 1, c.costs = Costs::Random;
  add_all(c);
  c = {}, c.name = "cost_reuse3", c.policy = "cost", c.lambda = 3.f, c.reuse = 3, c.costs = Costs::Skewed;
  c.S = 4, c.k_max = 3;
  add(c, {8, -1}), add(c, {65, 128}), add(c, {1030, 0});
  c = {}, c.name = "cost_reuse75", c.policy = "cost", c.lambda = 1.f, c.reuse = 75, c.costs = Costs::Random;
  add(c, {300, 128});
  c = {}, c.name = "cost_reuse2_mask", c.policy = "cost", c.lambda = 1.5f, c.reuse = 2, c.costs = Costs::Random;
  c.S = 4, c.k_max = 4, c.mask = Mask::Some;
  add(c, {100, 64});
  c = {}, c.name = "cost_l1_mask_one", c.policy = "cost", c.lambda = 1.f, c.costs = Costs::Random, c.mask = Mask::One;
  add(c, {9, 64});
  c = {}, c.name = "cost_E40_reuse", c.policy = "cost", c.lambda = 0.8f, c.reuse = 4, c.costs = Costs::Random;
  c.E = 40, c.k = 3, c.S = 5;
  add(c, {8, -1}), add(c, {200, 64});

  // --- top_p -------------------------------------------------------------------------------------------------------
  c = {}, c.name = "topp_p1_kminK", c.policy = "top_p", c.p = 1.f, c.k_min = 2, c.equals_topk = true;
  add(c, {8, -1}), add(c, {300, 128});
  c = {}, c.name = "topp_p1_kmin1_K4", c.policy = "top_p", c.p = 1.f, c.S = 4, c.k_max = 4;
  add(c, {65, 64});
  c = {}, c.name = "topp_p0p5_K4", c.policy = "top_p", c.p = 0.5f, c.S = 4, c.k_max = 4;
  add_all(c);
  c = {}, c.name = "topp_p0p8_kmin2", c.policy = "top_p", c.p = 0.8f, c.k_min = 2, c.S = 4, c.k_max = 4;
  c.renorm = false;
  add(c, {9, 64}), add(c, {200, 128});
  c = {}, c.name = "topp_p0p3_KE", c.policy = "top_p", c.p = 0.3f, c.E = 8, c.S = 8, c.k_max = 8;
  add(c, {64, 64});
  c = {}, c.name = "topp_mask_fewer", c.policy = "top_p", c.p = 0.6f, c.k_min = 2, c.S = 4, c.k_max = 4;
  c.mask = Mask::FewerThanK;
  add(c, {70, 64});
  c = {}, c.name = "topp_alltie", c.policy = "top_p", c.p = 0.5f, c.route = Route::AllTie, c.S = 4, c.k_max = 4;
  add(c, {8, -1}), add(c, {100, 64});  // 4 × 1/8 reaches 0.5 exactly in double: 4 slots
  c = {}, c.name = "topp_kmin_eq_K", c.policy = "top_p", c.p = 0.2f, c.k_min = 3, c.S = 3, c.k_max = 3;
  c.equals_topk = true;
  add(c, {7, -1}), add(c, {65, 128});

  // --- skip --------------------------------------------------------------------------------------------------------
  c = {}, c.name = "skip_b0", c.policy = "skip", c.equals_topk = true;
  add(c, {8, -1}), add(c, {300, 128});
  c = {}, c.name = "skip_b0p3_K4", c.policy = "skip", c.beta = 0.3f, c.S = 4, c.k_max = 4;
  add_all(c);
  c = {}, c.name = "skip_b0p9_kmin2", c.policy = "skip", c.beta = 0.9f, c.k_min = 2, c.S = 4, c.k_max = 4;
  add(c, {100, 64});
  c = {}, c.name = "skip_b1_alltie", c.policy = "skip", c.beta = 1.f, c.S = 3, c.k_max = 3, c.route = Route::AllTie;
  add(c, {8, -1}), add(c, {65, 64});  // equal probabilities are not below β·p0: every slot kept
  c = {}, c.name = "skip_b1_oneexpert", c.policy = "skip", c.beta = 1.f, c.S = 3, c.k_max = 3;
  c.route = Route::OneExpert;
  add(c, {8, -1}), add(c, {200, 128});  // every token keeps slot 0 only
  c = {}, c.name = "skip_mask_one", c.policy = "skip", c.beta = 0.5f, c.S = 3, c.k_max = 3, c.mask = Mask::One;
  add(c, {20, 64});
  c = {}, c.name = "skip_kmin_eq_K", c.policy = "skip", c.beta = 0.9f, c.k_min = 3, c.S = 4, c.k_max = 3;
  c.equals_topk = true;
  add(c, {5, -1}), add(c, {66, 64});

  // --- budget ------------------------------------------------------------------------------------------------------
  c = {}, c.name = "budget_inf", c.policy = "budget", c.costs = Costs::Random, c.equals_topk = true;
  add(c, {8, -1}), add(c, {300, 128}), add(c, {1030, 0});
  c = {}, c.name = "budget_inf_K4_kmin2", c.policy = "budget", c.costs = Costs::Random, c.S = 4, c.k_max = 4;
  c.k_min = 2, c.equals_topk = true;
  add(c, {65, 64});
  c = {}, c.name = "budget_zero", c.policy = "budget", c.budget = 0, c.costs = Costs::Random, c.equals_topkmin = true;
  add(c, {8, -1}), add(c, {300, 128});
  c = {}, c.name = "budget_zero_K4_kmin2", c.policy = "budget", c.budget = 0, c.costs = Costs::Random;
  c.S = 4, c.k_max = 4, c.k_min = 2, c.equals_topkmin = true;
  add(c, {65, 64});
  for (double f : {0.3, 0.6, 0.9}) {
    c = {}, c.policy = "budget", c.budget_frac = f, c.costs = Costs::Random;
    c.name = "budget_f0p" + std::to_string(std::lround(f * 10));
    add_all(c);
  }
  c = {}, c.name = "budget_f0p5_K4", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.S = 4, c.k_max = 4;
  add(c, {300, 128}), add(c, {2000, 0});  // ~6000 candidates: the radix sort runs over several tiles
  c = {}, c.name = "budget_skewed", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Skewed;
  c.S = 3, c.k_max = 3;
  add(c, {8, -1}), add(c, {65, 64}), add(c, {300, 128});
  c = {}, c.name = "budget_dyadic", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Dyadic;
  c.S = 3, c.k_max = 3;
  add(c, {8, -1}), add(c, {100, 64});
  c = {}, c.name = "budget_dyadic_alltie", c.policy = "budget", c.budget_frac = 0.4, c.costs = Costs::Dyadic;
  c.S = 4, c.k_max = 4, c.route = Route::AllTie;  // every weight per joule ties: token, then expert order decide
  add(c, {8, -1}), add(c, {100, 64});
  c = {}, c.name = "budget_zero_costs", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Zero;
  c.S = 3, c.k_max = 3;  // every price 0: ratio inf for all, the budget (0 here) never binds
  add(c, {64, 64});
  c = {}, c.name = "budget_mask", c.policy = "budget", c.budget_frac = 0.7, c.costs = Costs::Random;
  c.S = 3, c.k_max = 3, c.mask = Mask::Some;
  add(c, {130, 128});
  c = {}, c.name = "budget_mask_fewer", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.S = 4, c.k_max = 4, c.k_min = 2, c.mask = Mask::FewerThanK;  // rows shorter than k_min
  add(c, {8, -1}), add(c, {70, 64});
  c = {}, c.name = "budget_oneexpert", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.S = 3, c.k_max = 3, c.route = Route::OneExpert;
  add(c, {300, 128});
  c = {}, c.name = "budget_deadexpert", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.route = Route::DeadExpert;
  add(c, {8, -1}), add(c, {65, 64});
  c = {}, c.name = "budget_E40", c.policy = "budget", c.budget_frac = 0.4, c.costs = Costs::Random;
  c.E = 40, c.k = 3, c.S = 5, c.k_max = 5, c.k_min = 2;  // lanes own two experts in the greedy
  add(c, {200, 64});
  c = {}, c.name = "budget_E256", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.E = 256, c.S = 8, c.k_max = 8;  // lanes own eight experts
  add(c, {5, -1}), add(c, {65, 64});
  c = {}, c.name = "budget_kmin_eq_K", c.policy = "budget", c.budget_frac = 0.2, c.costs = Costs::Random;
  c.S = 3, c.k_max = 3, c.k_min = 3, c.equals_topk = true;  // no candidates: the floor only
  add(c, {65, 64});
  c = {}, c.name = "budget_k1", c.policy = "budget", c.budget_frac = 0.5, c.costs = Costs::Random;
  c.E = 6, c.k = 1, c.S = 2, c.k_max = 2, c.renorm = false;
  add(c, {1, -1}), add(c, {9, 64});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, MoeRoutePolicyTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<PolicyCase>& i) { return i.param.name; });

// The default block is plain top-k with the model's k: the same bits as setting topk explicitly, and a layer with
// more slots than k leaves the extra slots -1 at no cost.
TEST(MoeRoutePolicy, DefaultIsTopKAndExtraSlotsAreFree) {
  for (int T : {6, 100, 300}) {
    PolicyCase c;
    c.name = "default", c.T = T, c.block_m = T <= 8 ? -1 : 0;
    Weights w;
    std::vector<uint16_t> x;
    test::make_inputs(c.T, c.H, c.I, c.E, c.route, 5 + T, w, x);
    DeviceIO io(x, c.T, c.H);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto plain = make_layer(c, w);
    const LayerRun a = forward_and_download(*plain, c, io.x, io.out, s);
    check_against_cpu(c, w, x, a, make_knobs(c, {}), {});
    MoeRoutePolicy tk{};
    tk.policy = MoeRoute::TopK;
    plain->set_route_policy(tk, s);
    const LayerRun b = forward_and_download(*plain, c, io.x, io.out, s);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.w, b.w);
    EXPECT_EQ(a.out, b.out);
    PolicyCase wide = c;
    wide.S = 5;
    auto w5 = make_layer(wide, w);
    EXPECT_EQ(w5->slots(), 5);
    const LayerRun d = forward_and_download(*w5, wide, io.x, io.out, s);
    for (int t = 0; t < T; ++t)
      for (int q = 0; q < 5; ++q) {
        EXPECT_EQ(d.ids[size_t(t) * 5 + q], q < 2 ? a.ids[size_t(t) * 2 + q] : -1);
        EXPECT_EQ(d.w[size_t(t) * 5 + q], q < 2 ? a.w[size_t(t) * 2 + q] : 0.f);
      }
    EXPECT_EQ(d.out, a.out) << "T=" << T;
    cudaStreamDestroy(s);
  }
}

// Knobs written between CUDA-graph replays take effect: the graph captures the block's address, not its values.
// Both ways of writing: set_route_policy into the layer's own block, and cudaMemcpyAsync into a caller-owned block
// the layer was pointed at (use_route_policy) before the capture. Every replay is checked against the CPU policy on
// that replay's probabilities and against an eager forward with the same knobs (bitwise).
TEST(MoeRoutePolicy, GraphReplayFollowsKnobChanges) {
  for (int T : {5, 100, 600}) {
    PolicyCase base;
    base.name = "graph", base.T = T, base.S = 4, base.block_m = T <= 8 ? -1 : 0;
    Weights w;
    std::vector<uint16_t> x;
    test::make_inputs(T, base.H, base.I, base.E, Route::Random, 77 + T, w, x);
    DeviceIO io(x, T, base.H);
    // The knob sequence: every policy, including the two that need the step-level pass.
    std::vector<PolicyCase> seq;
    auto knob = [&](const char* policy, std::function<void(PolicyCase&)> set) {
      PolicyCase c = base;
      c.policy = policy, c.name = std::string("graph_") + policy;
      set(c);
      seq.push_back(c);
    };
    knob("topk", [](PolicyCase&) {});
    knob("top_p", [](PolicyCase& c) { c.p = 0.5f, c.k_max = 4; });
    knob("cost", [](PolicyCase& c) { c.lambda = 1.f, c.reuse = 2, c.costs = Costs::Random, c.k_max = 3; });
    knob("budget", [](PolicyCase& c) { c.budget_frac = 0.5, c.costs = Costs::Random, c.k_max = 4; });
    knob("skip", [](PolicyCase& c) { c.beta = 0.4f, c.k_max = 4; });
    knob("mask", [](PolicyCase& c) { c.mask = Mask::FewerThanK, c.k_max = 4; });
    knob("budget", [](PolicyCase& c) { c.budget = 0, c.costs = Costs::Random, c.k_max = 3, c.name += "_zero"; });
    knob("topk", [](PolicyCase& c) { c.name += "_again"; });

    for (bool caller_block : {false, true}) {
      SCOPED_TRACE(std::string("T=") + std::to_string(T) + (caller_block ? " caller-owned block" : " own block"));
      cudaStream_t s;
      CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      auto layer = make_layer(base, w);
      MoeRoutePolicy* dblock = nullptr;
      if (caller_block) {
        CUDA_OK(cudaMalloc(&dblock, sizeof(MoeRoutePolicy)));
        const MoeRoutePolicy def{};
        CUDA_OK(cudaMemcpy(dblock, &def, sizeof def, cudaMemcpyHostToDevice));
        layer->use_route_policy(dblock);
        EXPECT_EQ(layer->route_policy(), dblock);
      }
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
      layer->forward(io.x, io.out, T, s);
      CUDA_OK(cudaStreamEndCapture(s, &graph));
      CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
      for (const PolicyCase& c : seq) {
        SCOPED_TRACE(c.name);
        const ExpertCosts costs = make_costs(c, 1234);
        const PolicyKnobs kn = make_knobs(c, costs);
        const MoeRoutePolicy blk = test::to_route_policy(c.policy, kn, costs, c.E);
        if (caller_block) {
          validate_route_policy(blk, c.E, c.k, layer->slots());
          CUDA_OK(cudaMemcpyAsync(dblock, &blk, sizeof blk, cudaMemcpyHostToDevice, s));
        } else {
          layer->set_route_policy(blk, s);
        }
        CUDA_OK(cudaMemsetAsync(io.out, 0xff, size_t(T) * c.H * 2, s));
        CUDA_OK(cudaGraphLaunch(exec, s));
        CUDA_OK(cudaStreamSynchronize(s));
        LayerRun g;
        g.out = to_host(static_cast<const uint16_t*>(io.out), size_t(T) * c.H);
        g.logits = to_host(layer->router_logits(), size_t(T) * c.E);
        g.probs = to_host(layer->router_probs(), size_t(T) * c.E);
        g.ids = to_host(layer->topk_ids(), size_t(T) * 4);
        g.w = to_host(layer->topk_weights(), size_t(T) * 4);
        g.counts = to_host(layer->expert_counts(), size_t(c.E));
        g.faults = layer->route_policy_faults();
        check_against_cpu(c, w, x, g, kn, costs);
        if (HasFatalFailure()) break;
        const LayerRun eager = forward_and_download(*layer, c, io.x, io.out, s);
        EXPECT_EQ(eager.ids, g.ids);
        EXPECT_EQ(eager.out, g.out);
      }
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
      cudaStreamDestroy(s);
      cudaFree(dblock);
      if (HasFatalFailure()) return;
    }
  }
}

// A budget equal to the energy of keeping every candidate (routing_energy of topk at K, summed in another order)
// sits on the fast path's bound: the greedy runs and must still match the CPU's exact double comparisons. The same
// at a budget one ulp-scale step below.
TEST(MoeRoutePolicy, BudgetAtTheFullEnergy) {
  for (int T : {8, 300}) {
    PolicyCase c;
    c.name = "budget_edge", c.T = T, c.S = 3, c.k_max = 3, c.policy = "budget", c.costs = Costs::Random;
    c.block_m = T <= 8 ? -1 : 0;
    Weights w;
    std::vector<uint16_t> x;
    test::make_inputs(c.T, c.H, c.I, c.E, c.route, 31 + T, w, x);
    DeviceIO io(x, c.T, c.H);
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const ExpertCosts costs = make_costs(c, 99);
    auto layer = make_layer(c, w);
    PolicyKnobs kn = make_knobs(c, costs);  // budget inf: topk at K
    layer->set_route_policy(test::to_route_policy("budget", kn, costs, c.E), s);
    const LayerRun full = forward_and_download(*layer, c, io.x, io.out, s);
    Routing r;
    r.reset(T, 3, c.E);
    r.expert = full.ids;
    r.recount();
    const double energy = routing_energy(r, costs);
    for (double b : {energy, std::nextafter(energy, 0.0), energy * (1 - 1e-9), energy * (1 + 1e-9)}) {
      kn.budget_j = b;
      SCOPED_TRACE("budget " + std::to_string(b) + " of full energy " + std::to_string(energy));
      layer->set_route_policy(test::to_route_policy("budget", kn, costs, c.E), s);
      const LayerRun g = forward_and_download(*layer, c, io.x, io.out, s);
      check_against_cpu(c, w, x, g, kn, costs);
      if (HasFatalFailure()) break;
    }
    cudaStreamDestroy(s);
  }
}

// Bad knobs never reach the device: set_route_policy names the knob. Shapes whose slot capacity cannot hold the
// default policy are refused at construction.
TEST(MoeRoutePolicy, RejectsBadKnobsWithAClearError) {
  const int E = 8;
  MoeLayerCuda layer({64, 64, E, 2, true, 4}, 16);
  std::vector<uint16_t> r(E * 64, 0), e(size_t(E) * 64 * 64, 0);
  layer.upload(r.data(), e.data(), e.data(), e.data());
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  ExpertCosts costs;
  costs.fixed.assign(E, 1.f), costs.per_token.assign(E, 0.1f);
  auto expect_error = [&](MoeRoutePolicy p, const std::string& what) {
    try {
      layer.set_route_policy(p, s);
      ADD_FAILURE() << "accepted; expected an error naming '" << what << "'";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(what), std::string::npos) << err.what();
    }
  };
  PolicyKnobs kn;
  kn.lambda = std::numeric_limits<float>::quiet_NaN();
  expect_error(test::to_route_policy("cost", kn, costs, E), "lambda = nan");
  kn = {};
  kn.p = 0.f;
  expect_error(test::to_route_policy("top_p", kn, costs, E), "knob p = 0");
  kn.p = 1.5f;
  expect_error(test::to_route_policy("top_p", kn, costs, E), "knob p = 1.5");
  kn = {};
  kn.k_max = 5;  // E allows it, the layer's 4 slots do not
  expect_error(test::to_route_policy("topk", kn, {}, E), "slot capacity 4");
  kn = {};
  kn.beta = 2.f;
  expect_error(test::to_route_policy("skip", kn, {}, E), "beta = 2");
  kn = {};
  kn.budget_j = -1;
  expect_error(test::to_route_policy("budget", kn, costs, E), "budget_j = -1");
  kn = {};
  expect_error(test::to_route_policy("cost", kn, {}, E), "prices experts");  // no costs at all
  ExpertCosts short_costs = costs;
  short_costs.fixed.pop_back();
  try {
    test::to_route_policy("cost", kn, short_costs, E);
    ADD_FAILURE() << "a cost vector of E-1 entries was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("has 7 entries"), std::string::npos) << err.what();
  }
  kn.mask.assign(E, true);
  expect_error(test::to_route_policy("mask", kn, {}, E), "prunes all 8 experts");
  // Not while capturing: the copy would be baked into the graph.
  cudaGraph_t g;
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  EXPECT_THROW(layer.set_route_policy(MoeRoutePolicy{}, s), Error);
  CUDA_OK(cudaStreamEndCapture(s, &g));
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
  // Slot capacity below k or above E.
  EXPECT_THROW(MoeLayerCuda({64, 64, 8, 3, true, 2}, 4), Error);
  EXPECT_THROW(MoeLayerCuda({64, 64, 8, 2, true, 9}, 4), Error);
}

// A corrupt caller-owned block (written without validate_route_policy) is clamped on the device, reported through
// route_policy_faults, and never makes the kernels index out of range.
TEST(MoeRoutePolicy, CorruptDeviceBlockIsClampedAndReported) {
  PolicyCase c;
  c.name = "corrupt", c.S = 4;
  for (int T : {4, 100}) {
    c.T = T, c.block_m = T <= 8 ? -1 : 0;
    Weights w;
    std::vector<uint16_t> x;
    test::make_inputs(c.T, c.H, c.I, c.E, c.route, 3, w, x);
    DeviceIO io(x, c.T, c.H);
    auto layer = make_layer(c, w);
    MoeRoutePolicy* d = nullptr;
    CUDA_OK(cudaMalloc(&d, sizeof(MoeRoutePolicy)));
    layer->use_route_policy(d);
    struct Bad {
      const char* what;
      std::function<void(MoeRoutePolicy&)> set;
      int fault;
    };
    const Bad bad[] = {
        {"K past the slots", [](MoeRoutePolicy& p) { p.k_max = 7; }, cuda::kRouteFaultK},
        {"negative K", [](MoeRoutePolicy& p) { p.k_max = -3; }, cuda::kRouteFaultK},
        {"k_min past K", [](MoeRoutePolicy& p) { p.policy = MoeRoute::Budget, p.k_min = 9, p.cost_experts = 8; },
         cuda::kRouteFaultKMin},
        {"unknown policy", [](MoeRoutePolicy& p) { p.policy = MoeRoute(42); }, cuda::kRouteFaultPolicy},
        {"all masked", [](MoeRoutePolicy& p) { p.mask[0] = 0xffu; }, cuda::kRouteFaultMask},
        {"cost without costs", [](MoeRoutePolicy& p) { p.policy = MoeRoute::Cost, p.lambda = 1.f; },
         cuda::kRouteFaultCosts},
    };
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (const Bad& b : bad) {
      SCOPED_TRACE(b.what);
      MoeRoutePolicy p{};
      b.set(p);
      CUDA_OK(cudaMemcpy(d, &p, sizeof p, cudaMemcpyHostToDevice));
      const LayerRun r = forward_and_download(*layer, c, io.x, io.out, s);
      EXPECT_EQ(cudaGetLastError(), cudaSuccess);
      EXPECT_NE(r.faults & b.fault, 0) << "faults " << r.faults;
      int pairs = 0;
      for (int32_t e : r.ids) {
        ASSERT_TRUE(e >= -1 && e < c.E) << e;
        pairs += e >= 0;
      }
      int total = 0;
      for (int32_t n : r.counts) total += n;
      EXPECT_EQ(total, pairs);
      for (uint16_t v : r.out) ASSERT_TRUE(std::isfinite(fb(v)));
    }
    // And a valid block again reports nothing.
    const MoeRoutePolicy ok{};
    CUDA_OK(cudaMemcpy(d, &ok, sizeof ok, cudaMemcpyHostToDevice));
    EXPECT_EQ(forward_and_download(*layer, c, io.x, io.out, s).faults, 0);
    cudaStreamDestroy(s);
    cudaFree(d);
  }
}

}  // namespace
}  // namespace wattmoe
