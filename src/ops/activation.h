// Elementwise activations of the expert FFN: SwiGLU h = silu(g) ⊙ u, and the sigmoid of the shared-expert gate.
#pragma once
#include <cmath>
#include <cstdint>

namespace wattmoe::ops {

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// h[i] = silu(g[i]) · u[i] over n elements.
template <class T>
void swiglu_fwd(const T* g, const T* u, T* h, int64_t n);
// Accumulates dg, du from dh (either may be null).
template <class T>
void swiglu_bwd(const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n);

}  // namespace wattmoe::ops
