// Dense matrix products on the CPU (OpenBLAS), templated so gradient checks run in double.
// Layout follows HF: a linear weight is W[out, in] and y = x·Wᵀ (+ b).
#pragma once
#include <cstdint>

namespace wattmoe::ops {

// Threads the BLAS library may use inside one call. The first gemm sets it to 1: products large enough to split are
// split into fixed tiles across the engine's thread pool (core/thread_pool.h) instead, which keeps results the same
// on any number of threads (OpenBLAS' own threading does not). Raising it again gives that up.
void set_blas_threads(int n);

// C[M,N] = alpha · op(A)·op(B) + beta · C, row-major; op(X) = Xᵀ when trans_x. Large products run as tiles of C on
// the default pool; the tiles depend on the shape only.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc);

// y[M,out] = x[M,in]·W[out,in]ᵀ + b (b may be null). Overwrites y.
template <class T>
void linear_fwd(const T* x, const T* W, const T* b, T* y, int64_t M, int64_t in, int64_t out);

// Backward of linear_fwd. Accumulates: dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy. Any of dx, dW, db may be null.
template <class T>
void linear_bwd(const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t M, int64_t in, int64_t out);

}  // namespace wattmoe::ops
