#include "ops/activation.h"

#include "core/thread_pool.h"
#include "ops/cpu/vec_math.h"

namespace wattmoe::ops {

namespace {
constexpr int64_t kMinChunk = 1 << 14;  // elements per thread below which threading costs more than it saves
}

template <class T>
void swiglu_fwd(const T* g, const T* u, T* h, int64_t n) {
  default_pool().parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T s = T(1) / (T(1) + vexp<T>(-g[i]));
          h[i] = g[i] * s * u[i];
        }
      },
      kMinChunk);
}

template <class T>
void swiglu_bwd(const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n) {
  default_pool().parallel_for(
      n,
      [&](int64_t b, int64_t e) {
        if (du && dg) {  // the common case, one pass (and one exp) for both
          for (int64_t i = b; i < e; ++i) {
            const T s = T(1) / (T(1) + vexp<T>(-g[i]));
            du[i] += dh[i] * g[i] * s;
            dg[i] += dh[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
          }
        } else if (du) {
          for (int64_t i = b; i < e; ++i) du[i] += dh[i] * g[i] * (T(1) / (T(1) + vexp<T>(-g[i])));
        } else if (dg) {
          for (int64_t i = b; i < e; ++i) {
            const T s = T(1) / (T(1) + vexp<T>(-g[i]));
            dg[i] += dh[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
          }
        }
      },
      kMinChunk);
}

template void swiglu_fwd<float>(const float*, const float*, float*, int64_t);
template void swiglu_fwd<double>(const double*, const double*, double*, int64_t);
template void swiglu_bwd<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_bwd<double>(const double*, const double*, const double*, double*, double*, int64_t);

}  // namespace wattmoe::ops
