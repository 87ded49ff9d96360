// Test helpers for comparing the GPU model with the CPU model or with its own host path: a relative error, the
// routing a model's last forward chose in every layer, and a RouterSelect that replays it (the lambda keeps a
// reference to r, which must outlive every forward that uses it; it fails the test when a layer's token count
// differs).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gpu/transformer_cuda.h"
#include "model/transformer.h"
#include "moe/routing.h"

namespace wattmoe::test {

// max|a − b| / max|b| (max|a − b| when b is all zeros); NaN when a holds a non-finite value.
template <class A, class B>
double norm_err(const A& a, const B& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0, d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(double(a[i]))) return NAN;
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    m = std::max(m, std::abs(double(b[i])));
  }
  return m > 0 ? d / m : d;
}

inline std::vector<Routing> routings(const gpu::TransformerCudaBf16& m) {
  std::vector<Routing> out;
  for (int l = 0; l < m.config().num_layers; ++l) out.push_back(m.routing(l).routing);
  return out;
}

inline RouterSelect<float> replay(const std::vector<Routing>& r) {
  return [&r](int l, const float*, const float*, int64_t n, Routing& out) {
    out = r[size_t(l)];
    ASSERT_EQ(out.tokens, n);
  };
}

}  // namespace wattmoe::test
