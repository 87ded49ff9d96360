// Shared by the MoeLayerCuda tests (moe_layer_test.cpp, moe_route_policy_test.cpp): random bf16 inputs with
// adversarial routing, device downloads, and the CPU reference of the layer's output for a given routing.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "ops/activation.h"

namespace wattmoe::test {

// Random: N(0,1)-ish logits. OneExpert: x[:,0] = 4 and router[0][0] = 4, expert 0 wins every token by ~16 logits.
// DeadExpert: router[E-1][0] = -4, expert E-1 loses every token by ~16 logits. AllTie: a zero router, every logit
// 0 (every probability equal). PairTie: experts 1 and 3 (and E-2 and E-1) get identical logits on every token.
enum class Route { Random, OneExpert, DeadExpert, AllTie, PairTie };

struct Weights {
  std::vector<uint16_t> router, gate, up, down;  // bf16 bits, HF layouts
};

inline uint16_t bf(double v) { return f32_to_bf16(float(v)); }
inline double fb(uint16_t b) { return bf16_to_f32(b); }

// Uniform with the given standard deviation (cheaper than normal for 10^8 values; the kernels do not care).
inline void fill(Rng& rng, std::vector<uint16_t>& v, size_t n, double std) {
  v.resize(n);
  const double a = std * std::sqrt(3.0);
  for (auto& x : v) x = bf((2 * rng.uniform() - 1) * a);
}

inline void make_inputs(int T, int H_, int I_, int E_, Route route, uint64_t seed, Weights& w,
                        std::vector<uint16_t>& x) {
  Rng rng(seed);
  const size_t H = H_, I = I_, E = E_;
  fill(rng, x, size_t(T) * H, 1.0);
  fill(rng, w.router, E * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.gate, E * I * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.up, E * I * H, 1.0 / std::sqrt(double(H)));
  fill(rng, w.down, E * H * I, 1.0 / std::sqrt(double(I)));
  switch (route) {
    case Route::Random: break;
    case Route::OneExpert:
    case Route::DeadExpert:
      for (int t = 0; t < T; ++t) x[size_t(t) * H] = bf(4.0);
      if (route == Route::OneExpert)
        w.router[0] = bf(4.0);
      else
        w.router[(E - 1) * H] = bf(-4.0);
      break;
    case Route::AllTie: std::fill(w.router.begin(), w.router.end(), uint16_t(0)); break;
    case Route::PairTie:
      if (E >= 4) std::copy_n(&w.router[1 * H], H, &w.router[3 * H]);
      if (E >= 2) std::copy_n(&w.router[(E - 2) * H], H, &w.router[(E - 1) * H]);
      break;
  }
}

template <class T>
std::vector<T> to_host(const T* dev, size_t n) {
  std::vector<T> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), dev, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

inline double bf16_ulp(double v) {
  const double a = std::fabs(v);
  if (a < 1e-30) return 1e-30;
  return std::ldexp(1.0, int(std::floor(std::log2(a))) - 7);
}

// The layer's output out [T,H] (bf16 bits, downloaded) against the CPU reference for the routing ids [T,S] (-1 =
// unused slot) with weights wref [T,S]: h = bf16(silu(g)·u) as the kernels store it (double products otherwise);
// out = Σ_{used s} w·(down·h).
// Tolerance, per element: the kernels round each weighted expert row y_s to bf16 (≤ 2^-9 |w·y_s| each) and the sum
// once more (≤ 2^-9 |out|): allow 2^-8 (Σ_s |w·y_s| + |out|). Where the fp32 and the double value of an h_i fall on
// opposite sides of a bf16 rounding boundary, h_i differs by one ulp (≤ 2^-8 |h_i|); with K = H up to 4096 that
// happens about once per row, so allow 4 such flips of the largest term: 4 · 2^-8 · Σ_s |w| max_i |h_i·down[n,i]|.
// fp32 accumulation over K (≈ √K · 2^-24 relative) is far below both; 2^-12 · rms(ref) covers it.
// Norm-wise the two half-ulp roundings give ≈ 1.6e-3; allow 2^-8. A token with no used slot must give exactly 0.
// The expert weights come from `wt(m, i)`: the double value of element i (flat index) of gate (m = 0, [E,I,H]), up
// (1, [E,I,H]) or down (2, [E,H,I]) — the bf16 experts (check_layer_output), or dequantised ones (code · scale, exact
// in double), for which the same bound holds: a quantised kernel forms Σ code·x in fp32 and multiplies by the scale
// once, which differs from Σ (code·scale)·x by fp32 roundings only (2^-24 relative, inside the 2^-12 · rms term).
template <class WeightFn>
void check_layer_output_with(int T, int H, int I, int S, WeightFn wt, const std::vector<uint16_t>& x,
                             const std::vector<uint16_t>& out, const std::vector<int32_t>& ids,
                             const std::vector<double>& wref) {
  std::vector<double> ref(size_t(T) * H, 0.0), mag(size_t(T) * H, 0.0), flip(size_t(T) * H, 0.0);
  std::vector<double> gv(static_cast<size_t>(I)), uv(static_cast<size_t>(I)), hv(static_cast<size_t>(I));
  for (int t = 0; t < T; ++t)
    for (int s = 0; s < S; ++s) {
      const int e = ids[size_t(t) * S + s];
      if (e < 0) continue;
      const double ws = wref[size_t(t) * S + s];
      const uint16_t* xr = &x[size_t(t) * H];
      for (int i = 0; i < I; ++i) {
        const size_t row = (size_t(e) * I + i) * H;
        double a = 0, b = 0;
        for (int j = 0; j < H; ++j) a += fb(xr[j]) * wt(0, row + j), b += fb(xr[j]) * wt(1, row + j);
        gv[size_t(i)] = a, uv[size_t(i)] = b;
      }
      ops::swiglu_fwd<double>(gv.data(), uv.data(), hv.data(), I);
      for (auto& v : hv) v = fb(bf(v));
      for (int n = 0; n < H; ++n) {
        const size_t row = (size_t(e) * H + n) * I;
        double y = 0, big = 0;
        for (int i = 0; i < I; ++i) {
          const double term = hv[size_t(i)] * wt(2, row + i);
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
    const double got = fb(out[i]);
    ASSERT_TRUE(std::isfinite(got)) << "output [" << i / H << "," << i % H << "] not written or not finite";
    const double d = got - ref[i];
    num += d * d;
    const double tol = std::ldexp(mag[i] + std::fabs(ref[i]) + 4 * flip[i], -8) + std::ldexp(rms, -12);
    if (std::fabs(d) > tol && bad++ < 5)
      ADD_FAILURE() << "out[" << i / H << "," << i % H << "] gpu=" << got << " ref=" << ref[i] << " tol=" << tol;
  }
  EXPECT_EQ(bad, 0);
  if (den > 0) {
    EXPECT_LE(std::sqrt(num / den), std::ldexp(1.0, -8)) << "relative L2 error";
  }
}

// The reference on the bf16 experts of w.
inline void check_layer_output(int T, int H, int I, int S, const Weights& w, const std::vector<uint16_t>& x,
                               const std::vector<uint16_t>& out, const std::vector<int32_t>& ids,
                               const std::vector<double>& wref) {
  const std::vector<uint16_t>* m[3] = {&w.gate, &w.up, &w.down};
  check_layer_output_with(
      T, H, I, S, [&](int which, size_t i) { return fb((*m[which])[i]); }, x, out, ids, wref);
}

}  // namespace wattmoe::test
