// Routing policies the GPU tests share: host selections the fused kernels cannot express, to test the host-routing
// path's handling of unusual routings against the CPU model.
#pragma once
#include <cstdint>

#include "model/transformer.h"  // RouterSelect
#include "moe/routing.h"

namespace wattmoe::test {

// Top-2 of the probabilities over experts 0 .. E−2 (expert E−1 never used), and on every third token only one slot
// (the second −1).
inline RouterSelect<float> dead_expert_policy(int E) {
  return [E](int, const float*, const float* probs, int64_t n, Routing& out) {
    out.reset(n, 2, E);
    for (int64_t t = 0; t < n; ++t) {
      int best = -1, second = -1;
      for (int e = 0; e < E - 1; ++e) {
        const float p = probs[t * E + e];
        if (best < 0 || p > probs[t * E + best]) second = best, best = e;
        else if (second < 0 || p > probs[t * E + second]) second = e;
      }
      out.expert[size_t(t * 2)] = best;
      out.expert[size_t(t * 2 + 1)] = t % 3 == 2 ? -1 : second;
    }
    out.recount();
  };
}

}  // namespace wattmoe::test
