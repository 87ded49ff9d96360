#include "ops/norm.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"

namespace wattmoe::ops {

namespace {
// Rows per thread below which threading costs more than it saves (~16k elements).
int64_t min_rows(int64_t dim) { return rows_per_chunk(dim, int64_t(1) << 14); }
}  // namespace

template <class T>
void rmsnorm_fwd(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t dim, double eps) {
  default_pool().parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* xi = x + i * dim;
          T ss = 0;
          for (int64_t j = 0; j < dim; ++j) ss += xi[j] * xi[j];
          T r = T(1) / std::sqrt(ss / T(dim) + T(eps));
          if (rstd) rstd[i] = r;
          T* yi = y + i * dim;
          for (int64_t j = 0; j < dim; ++j) yi[j] = w[j] * (xi[j] * r);
        }
      },
      min_rows(dim));
}

template <class T>
void rmsnorm_bwd(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t dim) {
  ThreadPool& pool = default_pool();
  // dw[j] sums over rows: split by columns so that each dw[j] is still summed over the rows in order.
  if (dw)
    pool.parallel_for(
        dim,
        [&](int64_t jb, int64_t je) {
          for (int64_t i = 0; i < rows; ++i) {
            const T *xi = x + i * dim, *dyi = dy + i * dim;
            const T r = rstd[i];
            for (int64_t j = jb; j < je; ++j) dw[j] += dyi[j] * xi[j] * r;
          }
        },
        std::max<int64_t>(8, min_rows(rows)));
  if (!dx) return;
  pool.parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T *xi = x + i * dim, *dyi = dy + i * dim;
          const T r = rstd[i];
          T dot = 0;  // Σ_j w_j dy_j x_j
          for (int64_t j = 0; j < dim; ++j) dot += w[j] * dyi[j] * xi[j];
          T c = dot * r * r * r / T(dim);
          T* dxi = dx + i * dim;
          for (int64_t j = 0; j < dim; ++j) dxi[j] += w[j] * dyi[j] * r - c * xi[j];
        }
      },
      min_rows(dim));
}

template void rmsnorm_fwd<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_fwd<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_bwd<float>(const float*, const float*, const float*, const float*, float*, float*, int64_t,
                                 int64_t);
template void rmsnorm_bwd<double>(const double*, const double*, const double*, const double*, double*, double*,
                                  int64_t, int64_t);

}  // namespace wattmoe::ops
