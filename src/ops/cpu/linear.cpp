#include "ops/linear.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/thread_pool.h"

namespace wattmoe::ops {

void set_blas_threads(int n) { openblas_set_num_threads(n); }

namespace {

// The engine's thread pool owns the cores: BLAS runs single-threaded inside each call, and large products are split
// into tiles of C across the pool (below). OpenBLAS' own threading also changes how it blocks the reduction
// dimension, so its results depend on its thread count; ours do not (see gemm_tiled).
void blas_single_thread_once() {
  static const bool once = (openblas_set_num_threads(1), true);
  (void)once;
}

template <class T>
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
               int64_t ldb, T beta, T* C, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, TA, TB, blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb),
                beta, C, blasint(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, TA, TB, blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb),
                beta, C, blasint(ldc));
  }
}

// Splits C into row blocks (or column blocks when N > M) and runs one BLAS call per block, as tasks on the pool.
// The blocks depend on the shape alone, never on the thread count: OpenBLAS' result for an element of C depends on
// where the element sits in the call (its edge kernels accumulate differently), so a split that followed the thread
// count would change results with it. With the blocks fixed, 1 or N threads give the same bits.
// Blocks are at least 64 rows and 8M multiply-adds (below that a split costs more than a second core saves), at
// most 8; tests/ops/thread_count_test.cpp checks the thread-count independence.
template <class T>
void gemm_tiled(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
  blas_single_thread_once();
  constexpr int64_t kTileWork = int64_t(1) << 23, kMinTileDim = 64, kMaxTiles = 8;
  const bool by_rows = M >= N;
  const int64_t dim = by_rows ? M : N;
  const int64_t tiles = std::min({kMaxTiles, M * N * std::max<int64_t>(K, 1) / kTileWork, dim / kMinTileDim});
  if (tiles <= 1) {
    blas_gemm<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const int64_t step = (dim + tiles - 1) / tiles;
  default_pool().run_tasks((dim + step - 1) / step, [&](int64_t t) {
    const int64_t b = t * step, n = std::min(dim, b + step) - b;
    if (by_rows) {  // rows b.. of C: rows of op(A)
      const T* At = ta ? A + b : A + b * lda;
      blas_gemm<T>(ta, tb, n, N, K, alpha, At, lda, B, ldb, beta, C + b * ldc, ldc);
    } else {  // columns b.. of C: columns of op(B)
      const T* Bt = tb ? B + b * ldb : B + b;
      blas_gemm<T>(ta, tb, M, n, K, alpha, A, lda, Bt, ldb, beta, C + b, ldc);
    }
  });
}

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  gemm_tiled<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  gemm_tiled<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
