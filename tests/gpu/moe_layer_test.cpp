// MoeLayerCuda (ops/moe_cuda.h) against the CPU reference: routing with ops::softmax_fwd + select_topk on the GPU's
// own bf16 logits, the expert FFN with ops::swiglu_fwd and double-precision dot products. (ops::linear_fwd would do
// the products, but it needs OpenBLAS, which the GPU machine lacks; a plain double loop is a stricter reference.)
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

namespace wattmoe {
namespace {

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

enum class Route { Random, OneExpert, DeadExpert, AllTie, PairTie };

struct MoeCase {
  const char* name;
  int T, H, I, E, k;
  bool renorm;
  int block_m;  // -1: decode kernels (T <= 8), 0: auto, 64 or 128: prefill with that tile (128: wgmma, sm_90)
  Route route;
};

std::ostream& operator<<(std::ostream& os, const MoeCase& c) { return os << c.name; }

struct Weights {
  std::vector<uint16_t> router, gate, up, down;  // bf16 bits, HF layouts
};

uint16_t bf(double v) { return f32_to_bf16(float(v)); }
double fb(uint16_t b) { return bf16_to_f32(b); }

// Uniform with the given standard deviation (cheaper than normal for 10^8 values; the kernels do not care).
void fill(Rng& rng, std::vector<uint16_t>& v, size_t n, double std) {
  v.resize(n);
  const double a = std * std::sqrt(3.0);
  for (auto& x : v) x = bf((2 * rng.uniform() - 1) * a);
}

void make_inputs(const MoeCase& c, uint64_t seed, Weights& w, std::vector<uint16_t>& x) {
  Rng rng(seed);
  const size_t H = c.H, I = c.I, E = c.E;
  fill(rng, x, size_t(c.T) * H, 1.0);
  fill(rng, w.router, E * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.gate, E * I * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.up, E * I * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.down, E * H * I, 1.0 / std::sqrt(double(I)));
  switch (c.route) {
    case Route::Random: break;
    case Route::OneExpert:  // x[:,0] = 4 and router[0][0] = 4: expert 0 wins every token by ~16 logits
    case Route::DeadExpert:  // router[E-1][0] = -4: expert E-1 loses every token by ~16 logits
      for (int t = 0; t < c.T; ++t) x[size_t(t) * H] = bf(4.0);
      if (c.route == Route::OneExpert)
        w.router[0] = bf(4.0);
      else
        w.router[(E - 1) * H] = bf(-4.0);
      break;
    case Route::AllTie: std::fill(w.router.begin(), w.router.end(), uint16_t(0)); break;  // every logit is 0
    case Route::PairTie:  // experts 1 and 3 (and E-1 and E-2) get identical logits on every token
      std::copy_n(&w.router[1 * H], H, &w.router[3 * H]);
      std::copy_n(&w.router[(E - 2) * H], H, &w.router[(E - 1) * H]);
      break;
  }
}

template <class T>
std::vector<T> to_host(const T* dev, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

double bf16_ulp(double v) {
  const double a = std::fabs(v);
  if (a < 1e-30) return 1e-30;
  return std::ldexp(1.0, int(std::floor(std::log2(a))) - 7);
}

struct GpuResult {
  std::vector<uint16_t> out, logits;
  std::vector<int32_t> ids, counts;
  std::vector<float> w;
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
  // 2. Top-k: select_topk on softmax of the same bf16 logits must agree exactly, except at near-ties (two logits
  //    that differ but whose double probabilities are equal); there the GPU must still pick the larger logit.
  std::vector<double> lg(size_t(T) * E), probs(size_t(T) * E);
  for (size_t i = 0; i < lg.size(); ++i) lg[i] = fb(g.logits[i]);
  ops::softmax_fwd<double>(lg.data(), probs.data(), T, E);
  Routing cpu;
  select_topk<double>(probs.data(), T, E, k, cpu);
  int near_ties = 0;
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < k; ++s) {
      const int ce = cpu.expert[size_t(t) * k + s], ge = g.ids[size_t(t) * k + s];
      ASSERT_TRUE(ge >= 0 && ge < E) << "t=" << t << " s=" << s << " id=" << ge;
      if (ce == ge) continue;
      ASSERT_EQ(probs[size_t(t) * E + ce], probs[size_t(t) * E + ge]) << "t=" << t << " s=" << s;
      ASSERT_GT(lg[size_t(t) * E + ge], lg[size_t(t) * E + ce]);
      ++near_ties;
    }
  EXPECT_LE(near_ties, 2) << "near-ties should be rare on random data";
  // 3. Counts are the histogram of the GPU's ids.
  std::vector<int32_t> cnt(static_cast<size_t>(E), 0);
  for (int32_t e : g.ids) ++cnt[size_t(e)];
  EXPECT_EQ(g.counts, cnt);
  // 4. Weights: fp32 softmax (expf) and one division against double: a few fp32 ulps.
  wref.assign(size_t(T) * k, 0.0);
  for (int t = 0; t < T; ++t) {
    double sum = 0;
    for (int s = 0; s < k; ++s) sum += probs[size_t(t) * E + g.ids[size_t(t) * k + s]];
    for (int s = 0; s < k; ++s) {
      const double p = probs[size_t(t) * E + g.ids[size_t(t) * k + s]];
      wref[size_t(t) * k + s] = c.renorm ? p / sum : p;
      EXPECT_NEAR(g.w[size_t(t) * k + s], wref[size_t(t) * k + s], 1e-6 + 4e-6 * wref[size_t(t) * k + s])
          << "weight t=" << t << " s=" << s;
    }
  }
}

// Output reference: h = bf16(silu(g)·u) as the kernels store it (double products otherwise); out = Σ_s w·(down·h).
// Tolerance, per element: the kernels round each weighted expert row y_s to bf16 (≤ 2^-9 |w·y_s| each) and the sum
// once more (≤ 2^-9 |out|): allow 2^-8 (Σ_s |w·y_s| + |out|). Where the fp32 and the double value of an h_i fall on
// opposite sides of a bf16 rounding boundary, h_i differs by one ulp (≤ 2^-8 |h_i|); with K = H up to 4096 that
// happens about once per row, so allow 4 such flips of the largest term: 4 · 2^-8 · Σ_s |w| max_i |h_i·down[n,i]|.
// fp32 accumulation over K (≈ √K · 2^-24 relative) is far below both; 2^-12 · rms(ref) covers it.
// Norm-wise the two half-ulp roundings give ≈ 1.6e-3; allow 2^-8.
void check_output(const MoeCase& c, const Weights& w, const std::vector<uint16_t>& x, const GpuResult& g,
                  const std::vector<double>& wref) {
  const int T = c.T, H = c.H, I = c.I, k = c.k;
  std::vector<double> ref(size_t(T) * H, 0.0), mag(size_t(T) * H, 0.0), flip(size_t(T) * H, 0.0);
  std::vector<double> gv(static_cast<size_t>(I)), uv(static_cast<size_t>(I)), hv(static_cast<size_t>(I));
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < k; ++s) {
      const int e = g.ids[size_t(t) * k + s];
      const double ws = wref[size_t(t) * k + s];
      const uint16_t* xr = &x[size_t(t) * H];
      for (int i = 0; i < I; ++i) {
        const uint16_t* gr = &w.gate[(size_t(e) * I + i) * H];
        const uint16_t* ur = &w.up[(size_t(e) * I + i) * H];
        double a = 0, b = 0;
        for (int j = 0; j < H; ++j) a += fb(xr[j]) * fb(gr[j]), b += fb(xr[j]) * fb(ur[j]);
        gv[size_t(i)] = a, uv[size_t(i)] = b;
      }
      ops::swiglu_fwd<double>(gv.data(), uv.data(), hv.data(), I);
      for (auto& v : hv) v = fb(bf(v));
      for (int n = 0; n < H; ++n) {
        const uint16_t* dr = &w.down[(size_t(e) * H + n) * I];
        double y = 0, big = 0;
        for (int i = 0; i < I; ++i) {
          const double term = hv[size_t(i)] * fb(dr[i]);
          y += term, big = std::max(big, std::fabs(term));
        }
        ref[size_t(t) * H + n] += ws * y;
        mag[size_t(t) * H + n] += std::fabs(ws * y);
        flip[size_t(t) * H + n] += std::fabs(ws) * big;
      }
    }
  double num = 0, den = 0;
  for (double v : ref) den += v * v;
  const double rms = std::sqrt(den / double(ref.size()));
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double got = fb(g.out[i]);
    ASSERT_TRUE(std::isfinite(got)) << "output " << i << " not written or not finite";
    const double d = got - ref[i];
    num += d * d;
    const double tol = std::ldexp(mag[i] + std::fabs(ref[i]) + 4 * flip[i], -8) + std::ldexp(rms, -12);
    if (std::fabs(d) > tol && bad++ < 5)
      ADD_FAILURE() << "out[" << i / H << "," << i % H << "] gpu=" << got << " ref=" << ref[i] << " tol=" << tol;
  }
  EXPECT_EQ(bad, 0);
  EXPECT_LE(std::sqrt(num / den), std::ldexp(1.0, -8)) << "relative L2 error";
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
