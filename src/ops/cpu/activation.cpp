#include "ops/activation.h"

#include <type_traits>

#include "ops/cpu/vec_math.h"

// The float loops are built for AVX2 and the baseline (WATTMOE_CLONES, same bits). Threading is the caller's (the
// model runs experts as tasks): this file stays free of the thread pool so that the GPU tests' reference build can
// use it alone.

namespace wattmoe::ops {

namespace {

template <class T>
inline T sigmoid_fast(T x) {
  return T(1) / (T(1) + vexp<T>(-x));
}

WATTMOE_CLONES void swiglu_fwd_f32(const float* g, const float* u, float* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] * sigmoid_fast(g[i]) * u[i];
}

WATTMOE_CLONES void swiglu_bwd_f32(const float* g, const float* u, const float* dh, float* dg, float* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = sigmoid_fast(g[i]);
    du[i] += dh[i] * g[i] * s;
    dg[i] += dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

}  // namespace

template <class T>
void swiglu_fwd(const T* g, const T* u, T* h, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    swiglu_fwd_f32(g, u, h, n);
  } else {
    for (int64_t i = 0; i < n; ++i) h[i] = g[i] * sigmoid_fast(g[i]) * u[i];
  }
}

template <class T>
void swiglu_bwd(const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (dg && du) return swiglu_bwd_f32(g, u, dh, dg, du, n);
  }
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid_fast(g[i]);
    if (du) du[i] += dh[i] * g[i] * s;
    if (dg) dg[i] += dh[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

template void swiglu_fwd<float>(const float*, const float*, float*, int64_t);
template void swiglu_fwd<double>(const double*, const double*, double*, int64_t);
template void swiglu_bwd<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_bwd<double>(const double*, const double*, const double*, double*, double*, int64_t);

}  // namespace wattmoe::ops
