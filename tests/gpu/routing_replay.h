// Test helpers for comparing the GPU model's fused path with a host or CPU run of the same selection: the routing a
// model's last forward chose in every layer, and a RouterSelect that replays it (the lambda keeps a reference to r,
// which must outlive every forward that uses it; it fails the test when a layer's token count differs).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gpu/transformer_cuda.h"
#include "model/transformer.h"
#include "moe/routing.h"

namespace wattmoe::test {

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
