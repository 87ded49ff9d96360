// CPU reference of the element-wise ops (ops/elementwise.h). Serial loops: the callers' buffers are small (the q, k,
// v projections; one row per token of the shared expert), and threading is the caller's, as for the activations.
#include "ops/elementwise.h"

#include <algorithm>

#include "ops/activation.h"  // sigmoid

namespace wattmoe::ops {

template <class T>
void clamp_fwd(T* x, T* pre, T lim, int64_t n) {
  for (int64_t i = 0; i < n; ++i) pre[i] = x[i], x[i] = std::clamp(x[i], -lim, lim);
}

template <class T>
void clamp_bwd(const T* pre, T lim, T* dy, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (pre[i] < -lim || pre[i] > lim) dy[i] = T(0);
}

template <class T>
void gated_add_fwd(const T* gate, const T* y, T* out, int64_t rows, int64_t H) {
  for (int64_t t = 0; t < rows; ++t) {
    const T s = sigmoid(gate[t]);
    for (int64_t j = 0; j < H; ++j) out[t * H + j] += s * y[t * H + j];
  }
}

template <class T>
void gated_add_bwd(const T* gate, const T* y, const T* dout, T* dy, T* dgate, int64_t rows, int64_t H) {
  for (int64_t t = 0; t < rows; ++t) {
    const T s = sigmoid(gate[t]);
    if (dy)
      for (int64_t j = 0; j < H; ++j) dy[t * H + j] += s * dout[t * H + j];
    if (!dgate) continue;
    T dot = 0;
    for (int64_t j = 0; j < H; ++j) dot += dout[t * H + j] * y[t * H + j];
    dgate[t] += dot * s * (T(1) - s);
  }
}

#define WATTMOE_ELEMENTWISE(T)                                                                    \
  template void clamp_fwd<T>(T*, T*, T, int64_t);                                                 \
  template void clamp_bwd<T>(const T*, T, T*, int64_t);                                           \
  template void gated_add_fwd<T>(const T*, const T*, T*, int64_t, int64_t);                       \
  template void gated_add_bwd<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t);
WATTMOE_ELEMENTWISE(float)
WATTMOE_ELEMENTWISE(double)
#undef WATTMOE_ELEMENTWISE

}  // namespace wattmoe::ops
