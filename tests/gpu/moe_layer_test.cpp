// MoeLayerCuda (ops/moe_cuda.h) against the CPU reference with the default policy (plain top-k): routing by
// select_topk on the layer's own fp32 probabilities (themselves checked against ops::softmax_fwd of its bf16
// logits), the expert FFN with ops::swiglu_fwd and double-precision dot products (moe_layer_harness.h; ops::linear_fwd
// would do the products, but it needs OpenBLAS, which the GPU machine lacks; a plain double loop is a stricter
// reference). The other routing policies: moe_route_policy_test.cpp.
// Every case draws fresh random inputs from its own seed, poisons the output with NaN before the forward, and covers
// both paths (decode kernels for T <= 8, grouped GEMMs with 64- and 128-row tiles) and adversarial routing.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "moe/routing.h"
#include "ops/activation.h"
#include "ops/moe_cuda.h"
#include "ops/softmax.h"
#include "moe_layer_harness.h"

namespace wattmoe {
namespace {

using test::bf;
using test::bf16_ulp;
using test::fb;
using test::Route;
using test::to_host;
using test::Weights;

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

struct MoeCase {
  const char* name;
  int T, H, I, E, k;
  bool renorm;
  int block_m;  // -1: decode kernels (T <= 8), 0: auto, 64 or 128: prefill with that tile (128: wgmma, sm_90)
  Route route;
};

std::ostream& operator<<(std::ostream& os, const MoeCase& c) { return os << c.name; }

void make_inputs(const MoeCase& c, uint64_t seed, Weights& w, std::vector<uint16_t>& x) {
  test::make_inputs(c.T, c.H, c.I, c.E, c.route, seed, w, x);
}

struct GpuResult {
  std::vector<uint16_t> out, logits;
  std::vector<int32_t> ids, counts;
  std::vector<float> w, probs;
};

GpuResult run_gpu(const MoeCase& c, const Weights& w, const std::vector<uint16_t>& x, int sm90_kernel = 0,
                  bool static_schedule = false, int sm90_store = 0) {
  MoeShape shape{c.H, c.I, c.E, c.k, c.renorm};
  MoeCudaOptions opt;
  opt.sm90_kernel = sm90_kernel;
  opt.sm90_static_schedule = static_schedule;
  opt.sm90_store = sm90_store;
  opt.decode_max_tokens = c.block_m < 0 ? 8 : 0;
  opt.block_m = c.block_m > 0 ? c.block_m : 0;
  MoeLayerCuda layer(shape, c.T, opt);
  layer.upload(w.router.data(), w.gate.data(), w.up.data(), w.down.data());
  const size_t nx = size_t(c.T) * c.H;
  void *dx = nullptr, *dout = nullptr;
  EXPECT_EQ(cudaMalloc(&dx, nx * 2), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dout, nx * 2), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(dx, x.data(), nx * 2, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemset(dout, 0xff, nx * 2), cudaSuccess);  // 0xffff is a bf16 NaN: unwritten outputs show
  layer.forward(dx, dout, c.T, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  GpuResult r;
  r.out = to_host(static_cast<const uint16_t*>(dout), nx);
  r.logits = to_host(layer.router_logits(), size_t(c.T) * c.E);
  r.probs = to_host(layer.router_probs(), size_t(c.T) * c.E);
  EXPECT_EQ(layer.slots(), c.k);  // default capacity: the model's k
  EXPECT_EQ(layer.route_policy_faults(), 0);
  r.ids = to_host(layer.topk_ids(), size_t(c.T) * c.k);
  r.w = to_host(layer.topk_weights(), size_t(c.T) * c.k);
  r.counts = to_host(layer.expert_counts(), size_t(c.E));
  cudaFree(dx);
  cudaFree(dout);
  return r;
}

// Checks the GPU routing against the CPU reference on the GPU's own logits; sets the reference weights [T,k].
void check_routing(const MoeCase& c, const Weights& w, const std::vector<uint16_t>& x, const GpuResult& g,
                   std::vector<double>& wref) {
  const int T = c.T, H = c.H, E = c.E, k = c.k;
  // 1. Logits: fp32 dot products rounded once to bf16, so within one bf16 ulp of the exact value (half an ulp for
  //    the rounding, the rest for fp32 accumulation, bounded by 2^-24 · H · Σ|x·w|).
  for (int t = 0; t < T; ++t)
    for (int e = 0; e < E; ++e) {
      double ref = 0, mag = 0;
      for (int j = 0; j < H; ++j) {
        const double p = fb(x[size_t(t) * H + j]) * fb(w.router[size_t(e) * H + j]);
        ref += p, mag += std::fabs(p);
      }
      const double got = fb(g.logits[size_t(t) * E + e]);
      ASSERT_LE(std::fabs(got - ref), bf16_ulp(ref) + std::ldexp(mag * H, -24)) << "logit t=" << t << " e=" << e;
    }
  // 2. Probabilities: the layer's fp32 softmax of its bf16 logits against the double one. expf is within 2 ulps
  //    (CUDA), l - max is exact (bf16-valued operands), the fp32 sum of E terms adds (E-1)·2^-24 relative and the
  //    division half an ulp: relative error <= (9 + E)·2^-24; allow (16 + E)·2^-24 (and 1e-37 for denormals).
  std::vector<double> lg(size_t(T) * E), probs(size_t(T) * E);
  for (size_t i = 0; i < lg.size(); ++i) lg[i] = fb(g.logits[i]);
  ops::softmax_fwd<double>(lg.data(), probs.data(), T, E);
  for (size_t i = 0; i < probs.size(); ++i)
    ASSERT_NEAR(g.probs[i], probs[i], std::ldexp(16.0 + E, -24) * probs[i] + 1e-37)
        << "prob t=" << i / E << " e=" << i % E;
  // 3. Top-k: select_topk on the layer's own fp32 probabilities must agree exactly (the contract: ranking by those
  //    probabilities, ties to the lower index).
  Routing cpu;
  select_topk<float>(g.probs.data(), T, E, k, cpu);
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < k; ++s) {
      const int ce = cpu.expert[size_t(t) * k + s], ge = g.ids[size_t(t) * k + s];
      ASSERT_EQ(ge, ce) << "t=" << t << " s=" << s << " prob(cpu pick)=" << g.probs[size_t(t) * E + ce]
                        << " prob(gpu pick)=" << (ge >= 0 && ge < E ? g.probs[size_t(t) * E + ge] : -1.f);
    }
  // 4. Counts are the histogram of the GPU's ids.
  std::vector<int32_t> cnt(static_cast<size_t>(E), 0);
  for (int32_t e : g.ids) ++cnt[size_t(e)];
  EXPECT_EQ(g.counts, cnt);
  // 5. Weights: route_weights<float> on the same fp32 probabilities performs the same fp32 operations in the same order
  //    (sum in slot order, one division): bitwise equal; and within a few fp32 ulps of the double reference.
  std::vector<float> wcpu(size_t(T) * k);
  route_weights<float>(cpu, g.probs.data(), c.renorm, wcpu.data());
  wref.assign(size_t(T) * k, 0.0);
  for (int t = 0; t < T; ++t) {
    double sum = 0;
    for (int s = 0; s < k; ++s) sum += probs[size_t(t) * E + g.ids[size_t(t) * k + s]];
    for (int s = 0; s < k; ++s) {
      const size_t i = size_t(t) * k + s;
      const double p = probs[size_t(t) * E + g.ids[i]];
      wref[i] = c.renorm ? p / sum : p;
      EXPECT_EQ(g.w[i], wcpu[i]) << "weight t=" << t << " s=" << s;
      EXPECT_NEAR(g.w[i], wref[i], 1e-6 + 4e-6 * wref[i]) << "weight t=" << t << " s=" << s;
    }
  }
}

void check_output(const MoeCase& c, const Weights& w, const std::vector<uint16_t>& x, const GpuResult& g,
                  const std::vector<double>& wref) {
  test::check_layer_output(c.T, c.H, c.I, c.k, w, x, g.out, g.ids, wref);
}

class MoeLayerTest : public ::testing::TestWithParam<MoeCase> {};

TEST_P(MoeLayerTest, MatchesCpuReference) {
  const MoeCase& c = GetParam();
  Weights w;
  std::vector<uint16_t> x;
  make_inputs(c, std::hash<std::string>{}(c.name), w, x);
  const GpuResult g = run_gpu(c, w, x);
  std::vector<double> wref;
  check_routing(c, w, x, g, wref);
  if (HasFatalFailure()) return;
  check_output(c, w, x, g, wref);

  // 128-row tiles: every Hopper kernel (1 cp.async, 2 TMA, 3 / 4 TMA + multicast in clusters of 2 / 4; auto picks 1
  // at these sizes)
  // meets the reference, and all four give the same bits (same wgmma sequence over the same k order).
  if (c.block_m == 128) {
    int major = 0;
    ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
    if (major == 9) {
      // {kernel, static schedule, epilogue (sm90_store: 1 registers, 2 TMA store in gate_up, 3 in both)}
      const int variants[][3] = {{1, 0, 0}, {2, 0, 1}, {3, 0, 1}, {4, 0, 1}, {3, 1, 1},
                                 {2, 0, 3}, {3, 0, 2}, {3, 0, 3}, {4, 0, 3}, {3, 1, 3}};
      for (const auto& v : variants) {
        SCOPED_TRACE("sm90_kernel " + std::to_string(v[0]) + (v[1] ? " static" : "") + " store " +
                     std::to_string(v[2]));
        const GpuResult gv = run_gpu(c, w, x, v[0], v[1] != 0, v[2]);
        check_output(c, w, x, gv, wref);
        EXPECT_EQ(gv.ids, g.ids);
        EXPECT_EQ(gv.out, g.out);
      }
    }
  }

  // Case-specific routing facts.
  if (c.route == Route::OneExpert) {
    EXPECT_EQ(g.counts[0], c.T);
  }
  if (c.route == Route::DeadExpert && c.k < c.E) {
    EXPECT_EQ(g.counts[size_t(c.E - 1)], 0);
  }
  if (c.route == Route::AllTie)
    for (int t = 0; t < c.T; ++t)
      for (int s = 0; s < c.k; ++s) {
        EXPECT_EQ(g.ids[size_t(t) * c.k + s], s) << "ties go to the lower index";
        EXPECT_FLOAT_EQ(g.w[size_t(t) * c.k + s], c.renorm ? 1.0f / float(c.k) : 1.0f / float(c.E));
      }
  if (c.route == Route::PairTie)
    for (int t = 0; t < c.T; ++t)
      for (int s = 0; s + 1 < c.k; ++s) {
        // wherever both twins are chosen, expert 1 precedes 3 (and E-2 precedes E-1)
        const int32_t* id = &g.ids[size_t(t) * c.k];
        for (int q = s + 1; q < c.k; ++q) {
          EXPECT_FALSE(id[s] == 3 && id[q] == 1);
          EXPECT_FALSE(id[s] == c.E - 1 && id[q] == c.E - 2);
        }
      }
}

// clang-format off
const MoeCase kCases[] = {
  // name                    T    H     I    E   k  renorm block route
  {"decode_t1",              1,  256,  320,  8,  2, true,  -1, Route::Random},
  {"decode_t3_odd",          3,  200,  328,  8,  2, true,  -1, Route::Random},
  {"decode_t5",              5,  512,  256,  8,  2, false, -1, Route::Random},
  {"decode_t8",              8,  256,  192,  8,  2, true,  -1, Route::Random},
  {"decode_one_expert",      8,  128,  136,  8,  2, true,  -1, Route::OneExpert},
  {"decode_all_tie_kE",      8,  136,   64,  4,  4, true,  -1, Route::AllTie},
  {"decode_pair_tie",        6,  256,  128,  8,  3, true,  -1, Route::PairTie},
  {"decode_k1",              7,  264,  200,  6,  1, false, -1, Route::Random},
  {"decode_long_k",          4, 4096, 1024,  8,  2, true,  -1, Route::Random},
  {"prefill64_odd",         37,  200,  328,  8,  2, true,  64, Route::Random},
  {"prefill64_k1",         130,  264,  200,  5,  1, false, 64, Route::Random},
  {"prefill64_kE",          50,  128,   96,  4,  4, true,  64, Route::Random},
  {"prefill64_e64_k6",     257,  256,  192, 64,  6, false, 64, Route::Random},
  {"prefill64_one_expert", 200,  192,  256,  8,  2, true,  64, Route::OneExpert},
  {"prefill64_dead",       150,  256,  136,  8,  2, true,  64, Route::DeadExpert},
  {"prefill64_all_tie",     70,  128,  128,  8,  2, true,  64, Route::AllTie},
  {"prefill64_pair_tie",   100,  256,  128,  8,  3, true,  64, Route::PairTie},
  {"prefill64_long_k",      70, 1024, 1408,  8,  2, true,  64, Route::Random},
  {"prefill128_odd",       300,  200,  328,  8,  2, true, 128, Route::Random},
  {"prefill128_one_expert",300,  256,  264,  8,  2, true, 128, Route::OneExpert},
  {"prefill128_e64_k6",    257,  256,  192, 64,  6, true, 128, Route::Random},
  {"prefill128_long_k",     64, 4096, 1024,  8,  2, true, 128, Route::Random},
  {"prefill128_dead",      200,  264,  328,  8,  2, false,128, Route::DeadExpert},
  {"prefill128_all_tie",   130,  128,  128,  8,  2, true, 128, Route::AllTie},
  // More tiles than SMs (gate_up 24 × 6 = 144): the persistent sm90 kernel runs several tiles per CTA, its stage ring
  // wraps across tiles, and an odd I leaves a partial N-tile.
  {"prefill128_many_tiles",1030, 520,  712,  8,  2, true, 128, Route::Random},
  // More (token, slot) pairs than one permute CTA takes (1024): the row offsets carry across CTAs.
  {"prefill128_one_expert_ctas",1500,128, 128,  8,  2, true, 128, Route::OneExpert},
  {"prefill64_dead_ctas",  1100,  128,  136,  8,  2, true,  64, Route::DeadExpert},
  {"auto_t9",                9,  256,  320,  8,  2, true,   0, Route::Random},
  {"auto_t700",            700,  256,  320,  8,  2, true,   0, Route::Random},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cases, MoeLayerTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<MoeCase>& i) { return std::string(i.param.name); });

struct Fixture {
  MoeCase c;
  Weights w;
  std::vector<uint16_t> x;
};

// Same input twice: bitwise equal outputs (no atomics in the data path; the combine has a fixed slot order).
TEST(MoeLayerCuda, RunTwiceBitwiseEqual) {
  for (int block : {-1, 64, 128}) {
    const MoeCase c{"twice", block < 0 ? 7 : 333, 256, 192, 8, 2, true, block, Route::Random};
    Weights w;
    std::vector<uint16_t> x;
    make_inputs(c, 7 + block, w, x);
    const GpuResult a = run_gpu(c, w, x), b = run_gpu(c, w, x);
    EXPECT_EQ(a.out, b.out) << "block " << block;
  }
}

// The forward captures into a CUDA graph (no host synchronisation on the routing) and a replay on new inputs gives
// exactly what an eager forward gives.
TEST(MoeLayerCuda, GraphReplayMatchesEager) {
  // decode, 64-row tiles, 128-row tiles (auto: cp.async), 128-row TMA + multicast in clusters of 2 and of 4 (tensor
  // maps and the cluster launch captured too; their auto epilogue is the TMA store), and kernel 3 with the
  // register epilogue (T = 603)
  for (int T : {5, 100, 600, 601, 602, 603}) {
    const MoeCase c{"graph", T, 256, 192, 8, 2, true, 0, Route::Random};
    MoeCudaOptions opt;
    opt.sm90_kernel = T == 601 || T == 603 ? 3 : (T == 602 ? 4 : 0);
    opt.sm90_store = T == 603 ? 1 : 0;
    Weights w;
    std::vector<uint16_t> x1, x2;
    make_inputs(c, 11 + T, w, x1);
    {
      Weights unused;
      make_inputs(c, 99 + T, unused, x2);
    }
    MoeLayerCuda layer({c.H, c.I, c.E, c.k, c.renorm}, T, opt);
    layer.upload(w.router.data(), w.gate.data(), w.up.data(), w.down.data());
    const size_t nx = size_t(T) * c.H;
    void *dx = nullptr, *dout = nullptr;
    CUDA_OK(cudaMalloc(&dx, nx * 2));
    CUDA_OK(cudaMalloc(&dout, nx * 2));
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_OK(cudaMemcpy(dx, x1.data(), nx * 2, cudaMemcpyHostToDevice));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    layer.forward(dx, dout, T, s);
    CUDA_OK(cudaStreamEndCapture(s, &graph));
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_OK(cudaMemcpy(dx, x2.data(), nx * 2, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dout, 0xff, nx * 2));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    const auto from_graph = to_host(static_cast<const uint16_t*>(dout), nx);
    CUDA_OK(cudaMemset(dout, 0xff, nx * 2));
    layer.forward(dx, dout, T, s);
    CUDA_OK(cudaStreamSynchronize(s));
    const auto eager = to_host(static_cast<const uint16_t*>(dout), nx);
    EXPECT_EQ(from_graph, eager) << "T=" << T;
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    cudaFree(dx);
    cudaFree(dout);
  }
}

TEST(MoeLayerCuda, RejectsBadShapesWithAClearError) {
  EXPECT_THROW(MoeLayerCuda({100, 64, 8, 2, true}, 4), Error);  // H not a multiple of 8
  MoeCudaOptions bad_kernel;
  bad_kernel.sm90_kernel = 5;
  EXPECT_THROW(MoeLayerCuda({64, 64, 8, 2, true}, 4, bad_kernel), Error);  // no such Hopper kernel
  MoeCudaOptions bad_store;
  bad_store.sm90_store = 4;
  EXPECT_THROW(MoeLayerCuda({64, 64, 8, 2, true}, 4, bad_store), Error);  // no such epilogue
  EXPECT_THROW(MoeLayerCuda({64, 60, 8, 2, true}, 4), Error);   // I not a multiple of 8
  EXPECT_THROW(MoeLayerCuda({64, 64, 8, 9, true}, 4), Error);   // k > E
  EXPECT_THROW(MoeLayerCuda({64, 64, 300, 2, true}, 4), Error); // E > 256
  MoeLayerCuda layer({64, 64, 8, 2, true}, 4);
  EXPECT_THROW(layer.forward(nullptr, nullptr, 2, nullptr), Error);  // no weights yet
  std::vector<uint16_t> r(8 * 64, 0), e(8 * 64 * 64, 0);
  layer.upload(r.data(), e.data(), e.data(), e.data());
  EXPECT_THROW(layer.forward(nullptr, nullptr, 5, nullptr), Error);  // T > max_tokens
  try {
    MoeLayerCuda bad({100, 64, 8, 2, true}, 4);
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("multiple of 8"), std::string::npos) << err.what();
  }
}

}  // namespace
}  // namespace wattmoe
