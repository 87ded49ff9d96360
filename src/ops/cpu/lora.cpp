#include "ops/lora.h"

#include <cstddef>
#include <vector>

#include "ops/linear.h"

namespace wattmoe::ops {

template <class T>
void lora_fwd(const T* x, const T* A, const T* B, T s, T* y, int64_t n, int64_t in, int64_t out, int64_t r) {
  if (n == 0) return;
  std::vector<T> t(size_t(n * r));
  gemm<T>(false, true, n, r, in, T(1), x, in, A, in, T(0), t.data(), r);
  gemm<T>(false, true, n, out, r, s, t.data(), r, B, r, T(1), y, out);
}

template <class T>
void lora_bwd(const T* x, const T* A, const T* B, T s, const T* dy, T* dx, T* dA, T* dB, int64_t n,
              int64_t in, int64_t out, int64_t r) {
  if (n == 0) return;
  if (dB) {
    std::vector<T> t(size_t(n * r));
    gemm<T>(false, true, n, r, in, T(1), x, in, A, in, T(0), t.data(), r);
    gemm<T>(true, false, out, r, n, s, dy, out, t.data(), r, T(1), dB, r);
  }
  if (!dA && !dx) return;
  std::vector<T> dt(size_t(n * r));
  gemm<T>(false, false, n, r, out, s, dy, out, B, r, T(0), dt.data(), r);
  if (dA) gemm<T>(true, false, r, in, n, T(1), dt.data(), r, x, in, T(1), dA, in);
  if (dx) gemm<T>(false, false, n, in, r, T(1), dt.data(), r, A, in, T(1), dx, in);
}

template <class T>
void lora_merge(const T* W, const T* A, const T* B, T s, T* merged, int64_t out, int64_t in, int64_t r) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; ++c) {
      T acc = 0;
      for (int64_t j = 0; j < r; ++j) acc += B[o * r + j] * A[j * in + c];
      merged[o * in + c] = W[o * in + c] + s * acc;
    }
}

template void lora_merge<float>(const float*, const float*, const float*, float, float*, int64_t, int64_t, int64_t);
template void lora_fwd<float>(const float*, const float*, const float*, float, float*, int64_t, int64_t,
                              int64_t, int64_t);
template void lora_fwd<double>(const double*, const double*, const double*, double, double*, int64_t, int64_t,
                               int64_t, int64_t);
template void lora_bwd<float>(const float*, const float*, const float*, float, const float*, float*, float*,
                              float*, int64_t, int64_t, int64_t, int64_t);
template void lora_bwd<double>(const double*, const double*, const double*, double, const double*, double*,
                               double*, double*, int64_t, int64_t, int64_t, int64_t);

}  // namespace wattmoe::ops
