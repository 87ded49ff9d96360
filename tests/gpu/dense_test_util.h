// Helpers of the dense CUDA op tests: host floats <-> device T (float or bf16), NaN poisoning, random data and the
// comparison (NaN/inf first, then ‖got − want‖∞ / max(‖want‖∞, tiny) against a tolerance).
// bf16 cases give the CPU reference the bf16-rounded inputs (as floats), so the only differences are the GPU's own
// roundings and its accumulation order.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/rng.h"
#include "ops/cuda/context.h"

namespace wattmoe::cuda::test {

using Vec = std::vector<float>;
template <class T>
constexpr bool kBf16 = std::is_same_v<T, bf16>;
template <class T>
const char* tname() {
  return kBf16<T> ? "bf16" : "fp32";
}

inline Context& ctx() {
  static Context c(0);
  return c;
}
#define REQUIRE_GPU() \
  if (!::wattmoe::cuda::device_available()) GTEST_SKIP() << "no CUDA device"

// Rounds each value to T and back (identity for float).
template <class T>
Vec round_to(Vec v) {
  if constexpr (kBf16<T>)
    for (float& x : v) x = bf16_to_f32(f32_to_bf16(x));
  return v;
}

inline Vec random_vec(Rng& rng, size_t n, double scale = 1.0) {
  Vec v(n);
  for (float& x : v) x = float(scale * rng.normal());
  return v;
}
template <class T>
Vec random_t(Rng& rng, size_t n, double scale = 1.0) {
  return round_to<T>(random_vec(rng, n, scale));
}

template <class T>
DeviceBuffer<T> to_dev(const Vec& h) {
  DeviceBuffer<T> d(h.size());
  if constexpr (kBf16<T>) {
    std::vector<uint16_t> b(h.size());
    for (size_t i = 0; i < h.size(); ++i) b[i] = f32_to_bf16(h[i]);
    d.upload(reinterpret_cast<const bf16*>(b.data()), b.size(), ctx().stream());
    ctx().sync();
  } else {
    d.upload(h, ctx().stream());
  }
  return d;
}

template <class T>
Vec from_dev(const DeviceBuffer<T>& d) {
  std::vector<T> h = d.download(ctx().stream());
  if constexpr (kBf16<T>) {
    Vec f(h.size());
    for (size_t i = 0; i < h.size(); ++i) {
      uint16_t b;
      std::memcpy(&b, &h[i], 2);
      f[i] = bf16_to_f32(b);
    }
    return f;
  } else {
    return h;
  }
}

template <class T>
DeviceBuffer<T> nan_dev(size_t n) {
  return to_dev<T>(Vec(n, std::numeric_limits<float>::quiet_NaN()));
}

// Initial values for accumulate-into outputs: random, about a third of the increment's largest magnitude, so that
// both a dropped accumulation and a wrong increment exceed the tolerances.
template <class T>
Vec acc_init(Rng& rng, const Vec& inc) {
  float m = 0;
  for (float x : inc) m = std::max(m, std::fabs(x));
  Vec v(inc.size());
  for (float& x : v) x = float((2 * rng.uniform() - 1) * 0.33 * (m > 0 ? m : 1.0));
  return round_to<T>(v);
}

// NaN/inf check first (want must be finite), then the normalised error. Returns the error (for the log).
inline double expect_close(const std::string& what, const Vec& got, const Vec& want, double tol) {
  EXPECT_EQ(got.size(), want.size()) << what;
  if (got.size() != want.size()) return INFINITY;
  double mx = 0, err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(want[i])) {
      ADD_FAILURE() << what << ": reference not finite at " << i;
      return INFINITY;
    }
    if (!std::isfinite(got[i])) {
      ADD_FAILURE() << what << ": non-finite value " << got[i] << " at " << i << " (want " << want[i] << ")";
      return INFINITY;
    }
    mx = std::max(mx, double(std::fabs(want[i])));
    err = std::max(err, std::fabs(double(got[i]) - double(want[i])));
  }
  const double e = err / std::max(mx, 1e-30);
  EXPECT_LE(e, tol) << what << " (max |want| " << mx << ")";
  std::printf("[err] %-60s %.3e (tol %.1e)\n", what.c_str(), e, tol);  // the log of every comparison
  return e;
}

// Tolerances of the normalised error. fp32: a few ulp for element-wise ops, more for reductions (random-walk
// accumulation error ~√n·2^-24, worst case n·2^-24 with n ≤ a few hundred here). bf16: inputs are exact on both
// sides, so the error is the GPU's roundings to bf16, each at most u = 2^-8 relative: one rounding gives ≤ u (plus
// fp32 noise: 1.1·u); attention chains two or three (P → bf16, dS → bf16, the output): 4·u.
template <class T>
double tol_elem() {
  return kBf16<T> ? 1.1 * 0x1p-8 : 2e-6;
}
template <class T>
double tol_reduce() {
  return kBf16<T> ? 1.1 * 0x1p-8 : 1e-5;
}
template <class T>
double tol_chain() {
  return kBf16<T> ? 4 * 0x1p-8 : 2e-5;
}

}  // namespace wattmoe::cuda::test
