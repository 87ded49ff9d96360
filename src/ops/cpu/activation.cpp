#include "ops/activation.h"

namespace wattmoe::ops {

template <class T>
void swiglu_fwd(const T* g, const T* u, T* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] = g[i] * sigmoid(g[i]) * u[i];
}

template <class T>
void swiglu_bwd(const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T s = sigmoid(g[i]);
    if (du) du[i] += dh[i] * g[i] * s;
    if (dg) dg[i] += dh[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
  }
}

template void swiglu_fwd<float>(const float*, const float*, float*, int64_t);
template void swiglu_fwd<double>(const double*, const double*, double*, int64_t);
template void swiglu_bwd<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_bwd<double>(const double*, const double*, const double*, double*, double*, int64_t);

}  // namespace wattmoe::ops
