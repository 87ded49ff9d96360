// The vectorisable exp of the CPU ops: relative error against exp in double over the whole float range, the edge
// cases (overflow to inf, underflow to 0, NaN), and SwiGLU equal bit for bit to its per-element formula (so the
// AVX2 and baseline builds of the loop agree with each other).
#include "ops/cpu/vec_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "ops/activation.h"

namespace wattmoe {
namespace {

TEST(OpExpFast, RelativeErrorWithinTwoUlp) {
  double worst = 0;
  for (float x = -86.6f; x < 88.7f; x += 0.0037f) {
    const double want = std::exp(double(x)), got = double(ops::exp_fast(x));
    worst = std::max(worst, std::abs(got - want) / want);
  }
  // 2 ulp of a float in [1, 2) is 2^-22; relative to the value that is at most 2^-22 ≈ 2.4e-7.
  EXPECT_LT(worst, 0x1p-22);
  EXPECT_EQ(ops::exp_fast(0.0f), 1.0f);
}

TEST(OpExpFast, EdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ops::exp_fast(88.8f), inf);
  EXPECT_EQ(ops::exp_fast(1000.0f), inf);
  EXPECT_EQ(ops::exp_fast(inf), inf);
  EXPECT_EQ(ops::exp_fast(-87.0f), 0.0f);  // below 2^-125: flushed
  EXPECT_EQ(ops::exp_fast(-inf), 0.0f);
  EXPECT_TRUE(std::isnan(ops::exp_fast(std::numeric_limits<float>::quiet_NaN())));
  const float big = ops::exp_fast(88.7f);  // 2^128 range reduction still lands on a finite float
  EXPECT_TRUE(std::isfinite(big));
  EXPECT_NEAR(double(big) / std::exp(double(88.7f)), 1.0, 1e-6);
}

TEST(OpExpFast, SwigluIsItsFormulaBitForBit) {
  Rng rng(5);
  const int64_t n = 1027;  // not a multiple of any vector width
  std::vector<float> g(n), u(n), h(n), dh(n), dg(n, 0.5f), du(n, -0.25f);
  for (int64_t i = 0; i < n; ++i) {
    g[i] = float(rng.uniform() * 30 - 15), u[i] = float(rng.uniform() * 2 - 1), dh[i] = float(rng.uniform() - 0.5);
  }
  ops::swiglu_fwd<float>(g.data(), u.data(), h.data(), n);
  ops::swiglu_bwd<float>(g.data(), u.data(), dh.data(), dg.data(), du.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + ops::exp_fast(-g[i]));
    const float want_h = g[i] * s * u[i];
    const float want_du = -0.25f + dh[i] * g[i] * s;
    const float want_dg = 0.5f + dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    ASSERT_EQ(std::memcmp(&h[i], &want_h, 4), 0) << i;
    ASSERT_EQ(std::memcmp(&du[i], &want_du, 4), 0) << i;
    ASSERT_EQ(std::memcmp(&dg[i], &want_dg, 4), 0) << i;
  }
}

}  // namespace
}  // namespace wattmoe
