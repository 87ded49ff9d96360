// The profiling blocks (ops/cuda/profile_blocks.h) against CPU references in double on random bf16 inputs, at odd
// token counts on both sides of the decode/prefill switch. Each stage is checked on the GPU's own inputs to it (the
// bf16 q, k, v the projections stored), so a one-ulp rounding difference upstream cannot grow into a false failure.
// Tolerances, per element, with ulp the bf16 spacing at the reference value:
//  - a GEMM stored to bf16: half an ulp of rounding plus fp32 accumulation over K terms (≤ K·2^-24·Σ|terms|):
//    ulp(ref) + 2^-24·K·Σ|terms|;
//  - the SwiGLU expert: as tests/gpu/moe_layer_test.cpp (k = 1, weight 1): the kernels store h and y in bf16, and an
//    h_i whose fp32 and double values straddle a rounding boundary differs by one ulp — 2^-8·(|y| + |out|) plus 4
//    such flips of the largest term, plus 2^-12·rms for fp32 accumulation;
//  - P·v: the probabilities are stored in bf16; one that straddles a boundary differs by an ulp (2^-8 relative),
//    so 2^-7·Σ_j p_j·|v_j| + ulp(ref).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/activation.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe {
namespace {

using Bits = std::vector<uint16_t>;

double fb(uint16_t b) { return bf16_to_f32(b); }
uint16_t bf(double v) { return f32_to_bf16(float(v)); }

double ulp(double v) {
  const double a = std::fabs(v);
  if (a < 1e-30) return 1e-30;
  return std::ldexp(1.0, int(std::floor(std::log2(a))) - 7);
}

Bits random_bits(Rng& rng, size_t n, double std) {
  Bits v(n);
  const double a = std * std::sqrt(3.0);
  for (auto& x : v) x = bf((2 * rng.uniform() - 1) * a);
  return v;
}

DeviceBuffer to_device(const Bits& h) {
  DeviceBuffer d(h.size() * 2);
  EXPECT_EQ(cudaMemcpy(d.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

Bits to_host(const void* d, size_t n) {
  Bits h(n);
  download(h.data(), d, n * 2);
  return h;
}

DeviceBuffer poisoned(size_t n) {  // 0xffff is a bf16 NaN: unwritten outputs show
  DeviceBuffer d(n * 2);
  EXPECT_EQ(cudaMemset(d.get(), 0xff, n * 2), cudaSuccess);
  return d;
}

// y[T,out] = x[T,in]·W[out,in]ᵀ in double, with Σ|x·w| per element.
void linear_ref(const Bits& x, const Bits& W, int T, int in, int out, std::vector<double>& y, std::vector<double>& mag) {
  y.assign(size_t(T) * out, 0), mag.assign(size_t(T) * out, 0);
  for (int t = 0; t < T; ++t)
    for (int o = 0; o < out; ++o) {
      double s = 0, m = 0;
      for (int i = 0; i < in; ++i) {
        const double p = fb(x[size_t(t) * in + i]) * fb(W[size_t(o) * in + i]);
        s += p, m += std::fabs(p);
      }
      y[size_t(t) * out + o] = s, mag[size_t(t) * out + o] = m;
    }
}

// A bf16 GEMM output against its double reference: ulp(ref) + 2^-24·K·Σ|terms| per element, and ≤ 2^-8 norm-wise.
void expect_gemm_close(const Bits& got, const std::vector<double>& ref, const std::vector<double>& mag, int K,
                       const std::string& what) {
  ASSERT_EQ(got.size(), ref.size());
  double num = 0, den = 0;
  int bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = fb(got[i]);
    ASSERT_TRUE(std::isfinite(g)) << what << "[" << i << "] not written or not finite";
    const double tol = ulp(ref[i]) + std::ldexp(mag[i] * K, -24);
    if (std::fabs(g - ref[i]) > tol && bad++ < 5) ADD_FAILURE() << what << "[" << i << "] gpu " << g << " ref " << ref[i];
    num += (g - ref[i]) * (g - ref[i]), den += ref[i] * ref[i];
  }
  EXPECT_EQ(bad, 0) << what;
  EXPECT_LE(std::sqrt(num / std::max(den, 1e-300)), std::ldexp(1.0, -8)) << what;
}

TEST(ProfileBlocksCuda, ExpertMatchesTheCpuReference) {
  const int H = 200, I = 328;
  for (int T : {1, 5, 37, 133}) {  // decode kernels (T <= 8), 64-row and 128-row tiles
    Rng rng(1000 + T);
    const Bits x = random_bits(rng, size_t(T) * H, 1.0);
    const Bits gate = random_bits(rng, size_t(I) * H, 1 / std::sqrt(double(H)));
    const Bits up = random_bits(rng, size_t(I) * H, 1 / std::sqrt(double(H)));
    const Bits down = random_bits(rng, size_t(H) * I, 1 / std::sqrt(double(I)));
    DeviceBuffer dx = to_device(x), dg = to_device(gate), du = to_device(up), dd = to_device(down);
    DeviceBuffer dout = poisoned(size_t(T) * H);
    ExpertBlockCuda block(H, I, 256);
    block.run(dg.get(), du.get(), dd.get(), dx.get(), dout.get(), T);
    cuda_synchronize();
    const Bits out = to_host(dout.get(), size_t(T) * H);

    std::vector<double> g, u, mg, mu;
    linear_ref(x, gate, T, H, I, g, mg);
    linear_ref(x, up, T, H, I, u, mu);
    std::vector<double> h(size_t(T) * I);
    ops::swiglu_fwd<double>(g.data(), u.data(), h.data(), int64_t(h.size()));
    for (auto& v : h) v = fb(bf(v));  // the kernels store h in bf16
    double num = 0, den = 0, rms_acc = 0;
    std::vector<double> ref(size_t(T) * H), big(size_t(T) * H);
    for (int t = 0; t < T; ++t)
      for (int n = 0; n < H; ++n) {
        double y = 0, m = 0;
        for (int i = 0; i < I; ++i) {
          const double term = h[size_t(t) * I + i] * fb(down[size_t(n) * I + i]);
          y += term, m = std::max(m, std::fabs(term));
        }
        ref[size_t(t) * H + n] = y, big[size_t(t) * H + n] = m, rms_acc += y * y;
      }
    const double rms = std::sqrt(rms_acc / double(ref.size()));
    int bad = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double o = fb(out[i]);
      ASSERT_TRUE(std::isfinite(o)) << "T=" << T << " out[" << i << "] not written";
      const double tol = std::ldexp(2 * std::fabs(ref[i]) + 4 * big[i], -8) + std::ldexp(rms, -12);
      if (std::fabs(o - ref[i]) > tol && bad++ < 5) ADD_FAILURE() << "T=" << T << " out[" << i << "] " << o << " vs " << ref[i];
      num += (o - ref[i]) * (o - ref[i]), den += ref[i] * ref[i];
    }
    EXPECT_EQ(bad, 0) << "T=" << T;
    EXPECT_LE(std::sqrt(num / den), std::ldexp(1.0, -8)) << "T=" << T;
  }
}

TEST(ProfileBlocksCuda, RouterMatchesTheCpuReference) {
  const int H = 264, E = 8;
  for (int T : {1, 9, 77}) {
    Rng rng(2000 + T);
    const Bits x = random_bits(rng, size_t(T) * H, 1.0), w = random_bits(rng, size_t(E) * H, 1 / std::sqrt(double(H)));
    DeviceBuffer dx = to_device(x), dw = to_device(w), dl = poisoned(size_t(T) * E);
    RouterBlockCuda router(H, E, 128);
    router.run(dw.get(), dx.get(), dl.get(), T);
    cuda_synchronize();
    std::vector<double> ref, mag;
    linear_ref(x, w, T, H, E, ref, mag);
    expect_gemm_close(to_host(dl.get(), size_t(T) * E), ref, mag, H, "router T=" + std::to_string(T));
  }
}

void check_attention(const AttentionShape& s, int T, uint64_t seed) {
  SCOPED_TRACE("heads " + std::to_string(s.heads) + "/" + std::to_string(s.kv_heads) + " T=" + std::to_string(T));
  const int H = s.hidden, qd = s.q_dim(), kvd = s.kv_dim(), hd = s.head_dim, group = s.heads / s.kv_heads;
  Rng rng(seed);
  const Bits x = random_bits(rng, size_t(T) * H, 1.0);
  const Bits wq = random_bits(rng, size_t(qd) * H, 1 / std::sqrt(double(H)));
  const Bits wk = random_bits(rng, size_t(kvd) * H, 1 / std::sqrt(double(H)));
  const Bits wv = random_bits(rng, size_t(kvd) * H, 1 / std::sqrt(double(H)));
  const Bits wo = random_bits(rng, size_t(H) * qd, 1 / std::sqrt(double(qd)));
  DeviceBuffer dx = to_device(x), dq = to_device(wq), dk = to_device(wk), dv = to_device(wv), dwo = to_device(wo);
  DeviceBuffer dout = poisoned(size_t(T) * H);
  AttentionBlockCuda block(s, 160);
  block.run(dq.get(), dk.get(), dv.get(), dwo.get(), dx.get(), dout.get(), T);
  cuda_synchronize();
  const Bits q = to_host(block.q(), size_t(T) * qd), k = to_host(block.k(), size_t(T) * kvd);
  const Bits v = to_host(block.v(), size_t(T) * kvd), attn = to_host(block.attn(), size_t(T) * qd);
  const Bits out = to_host(dout.get(), size_t(T) * H);

  // 1. Projections.
  std::vector<double> ref, mag;
  linear_ref(x, wq, T, H, qd, ref, mag);
  expect_gemm_close(q, ref, mag, H, "q");
  linear_ref(x, wk, T, H, kvd, ref, mag);
  expect_gemm_close(k, ref, mag, H, "k");
  linear_ref(x, wv, T, H, kvd, ref, mag);
  expect_gemm_close(v, ref, mag, H, "v");

  // 2. Causal attention on the GPU's own q, k, v.
  double num = 0, den = 0;
  int bad = 0;
  std::vector<double> p(static_cast<size_t>(T));
  for (int h = 0; h < s.heads; ++h) {
    const int g = h / group;
    for (int t = 0; t < T; ++t) {
      double m = -INFINITY;
      for (int j = 0; j <= t; ++j) {
        double d = 0;
        for (int c = 0; c < hd; ++c) d += fb(q[size_t(t) * qd + h * hd + c]) * fb(k[size_t(j) * kvd + g * hd + c]);
        p[size_t(j)] = d / std::sqrt(double(hd));
        m = std::max(m, p[size_t(j)]);
      }
      double sum = 0;
      for (int j = 0; j <= t; ++j) sum += (p[size_t(j)] = std::exp(p[size_t(j)] - m));
      for (int c = 0; c < hd; ++c) {
        double a = 0, amag = 0;
        for (int j = 0; j <= t; ++j) {
          const double pj = fb(bf(p[size_t(j)] / sum)), vj = fb(v[size_t(j) * kvd + g * hd + c]);
          a += pj * vj, amag += pj * std::fabs(vj);
        }
        const double got = fb(attn[size_t(t) * qd + h * hd + c]);
        ASSERT_TRUE(std::isfinite(got)) << "attn not written at t=" << t << " h=" << h;
        if (std::fabs(got - a) > std::ldexp(amag, -7) + ulp(a) && bad++ < 5)
          ADD_FAILURE() << "attn t=" << t << " h=" << h << " c=" << c << " gpu " << got << " ref " << a;
        num += (got - a) * (got - a), den += a * a;
      }
    }
    // Query 0 sees only key 0: its output is v's row 0 exactly (probability 1).
    for (int c = 0; c < hd; ++c) EXPECT_EQ(attn[size_t(h) * hd + c], v[size_t(g) * hd + c]) << "h=" << h << " c=" << c;
  }
  EXPECT_EQ(bad, 0);
  EXPECT_LE(std::sqrt(num / den), std::ldexp(1.0, -8));

  // 3. Output projection on the GPU's attn.
  linear_ref(attn, wo, T, qd, H, ref, mag);
  expect_gemm_close(out, ref, mag, qd, "out");
}

TEST(ProfileBlocksCuda, AttentionMatchesTheCpuReference) {
  for (int T : {1, 7, 37, 130}) {
    check_attention({256, 4, 2, 32}, T, 3000 + T);  // grouped-query
    check_attention({128, 2, 2, 64}, T, 4000 + T);  // multi-head
  }
}

TEST(ProfileBlocksCuda, RandomFillHasTheAskedSpreadAndIsReproducible) {
  const size_t n = 1 << 20;
  DeviceBuffer a(n * 2), b(n * 2);
  fill_uniform_bf16(a.get(), n, 0.5, 42);
  fill_uniform_bf16(b.get(), n, 0.5, 42);
  cuda_synchronize();
  const Bits ha = to_host(a.get(), n), hb = to_host(b.get(), n);
  EXPECT_EQ(ha, hb);
  double s = 0, ss = 0, mx = 0;
  for (uint16_t v : ha) s += fb(v), ss += fb(v) * fb(v), mx = std::max(mx, std::fabs(fb(v)));
  EXPECT_NEAR(s / double(n), 0, 0.01);
  EXPECT_NEAR(std::sqrt(ss / double(n)), 0.5, 0.01);
  EXPECT_LE(mx, 0.5 * std::sqrt(3.0) * 1.01);
}

TEST(ProfileBlocksCuda, BadShapesAndTokenCountsGiveClearErrors) {
  EXPECT_THROW(ExpertBlockCuda(100, 64, 8), Error);  // H not a multiple of 8
  EXPECT_THROW(AttentionBlockCuda({64, 3, 2, 16}, 8), Error);  // heads not a multiple of kv_heads
  RouterBlockCuda router(64, 4, 8);
  try {
    router.run(nullptr, nullptr, nullptr, 9);
    ADD_FAILURE() << "T > max_tokens accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("T=9 outside 1..8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wattmoe
