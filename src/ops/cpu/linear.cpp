#include "ops/linear.h"

#include <cblas.h>

#include <cstring>

namespace wattmoe::ops {

void set_blas_threads(int n) { openblas_set_num_threads(n); }

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M), blasint(N),
              blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M), blasint(N),
              blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}

template <class T>
void linear_fwd(const T* x, const T* W, const T* b, T* y, int64_t M, int64_t in, int64_t out) {
  if (M == 0) return;
  if (b) {
    for (int64_t i = 0; i < M; ++i) std::memcpy(y + i * out, b, sizeof(T) * out);
  }
  gemm<T>(false, true, M, out, in, T(1), x, in, W, in, b ? T(1) : T(0), y, out);
}

template <class T>
void linear_bwd(const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t M, int64_t in, int64_t out) {
  if (M == 0) return;
  if (dx) gemm<T>(false, false, M, in, out, T(1), dy, out, W, in, T(1), dx, in);
  if (dW) gemm<T>(true, false, out, in, M, T(1), dy, out, x, in, T(1), dW, in);
  if (db) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < out; ++j) db[j] += dy[i * out + j];
  }
}

template void linear_fwd<float>(const float*, const float*, const float*, float*, int64_t, int64_t, int64_t);
template void linear_fwd<double>(const double*, const double*, const double*, double*, int64_t, int64_t, int64_t);
template void linear_bwd<float>(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t,
                                int64_t);
template void linear_bwd<double>(const double*, const double*, const double*, double*, double*, double*, int64_t,
                                 int64_t, int64_t);

}  // namespace wattmoe::ops
