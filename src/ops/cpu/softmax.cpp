#include "ops/softmax.h"

#include <algorithm>
#include <cmath>

namespace wattmoe::ops {

template <class T>
void softmax_fwd(const T* x, T* y, int64_t rows, int64_t n) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * n;
    T* yi = y + i * n;
    T mx = *std::max_element(xi, xi + n), sum = 0;
    for (int64_t j = 0; j < n; ++j) sum += (yi[j] = std::exp(xi[j] - mx));
    for (int64_t j = 0; j < n; ++j) yi[j] /= sum;
  }
}

template <class T>
void softmax_bwd(const T* y, const T* dy, T* dx, int64_t rows, int64_t n) {
  for (int64_t i = 0; i < rows; ++i) {
    const T *yi = y + i * n, *dyi = dy + i * n;
    T dot = 0;
    for (int64_t j = 0; j < n; ++j) dot += yi[j] * dyi[j];
    for (int64_t j = 0; j < n; ++j) dx[i * n + j] += yi[j] * (dyi[j] - dot);
  }
}

template <class T>
T logsumexp(const T* x, int64_t n) {
  T mx = *std::max_element(x, x + n), sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(x[j] - mx);
  return mx + std::log(sum);
}

template void softmax_fwd<float>(const float*, float*, int64_t, int64_t);
template void softmax_fwd<double>(const double*, double*, int64_t, int64_t);
template void softmax_bwd<float>(const float*, const float*, float*, int64_t, int64_t);
template void softmax_bwd<double>(const double*, const double*, double*, int64_t, int64_t);
template float logsumexp<float>(const float*, int64_t);
template double logsumexp<double>(const double*, int64_t);

}  // namespace wattmoe::ops
