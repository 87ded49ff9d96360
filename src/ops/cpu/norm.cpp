#include "ops/norm.h"

#include <cmath>

namespace wattmoe::ops {

template <class T>
void rmsnorm_fwd(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t dim, double eps) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * dim;
    T ss = 0;
    for (int64_t j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    T r = T(1) / std::sqrt(ss / T(dim) + T(eps));
    if (rstd) rstd[i] = r;
    T* yi = y + i * dim;
    for (int64_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * r);
  }
}

template <class T>
void rmsnorm_bwd(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t dim) {
  for (int64_t i = 0; i < rows; ++i) {
    const T *xi = x + i * dim, *dyi = dy + i * dim;
    T r = rstd[i];
    if (dw)
      for (int64_t j = 0; j < dim; ++j) dw[j] += dyi[j] * xi[j] * r;
    if (!dx) continue;
    T dot = 0;  // Σ_j w_j dy_j x_j
    for (int64_t j = 0; j < dim; ++j) dot += w[j] * dyi[j] * xi[j];
    T c = dot * r * r * r / T(dim);
    T* dxi = dx + i * dim;
    for (int64_t j = 0; j < dim; ++j) dxi[j] += w[j] * dyi[j] * r - c * xi[j];
  }
}

template void rmsnorm_fwd<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_fwd<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_bwd<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                 int64_t);
template void rmsnorm_bwd<double>(const double*, const double*, const double*, const double*, double*, double*,
                                  int64_t, int64_t);

}  // namespace wattmoe::ops
