// GEMM and linear layers on the GPU (dense_ops.h): cuBLAS with fp32 accumulation, row-major in, row-major out.
// Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS gets the operands swapped (B first) and
// the same transpose flags. linear_fwd overwrites y; linear_bwd accumulates (beta = 1), db by a deterministic
// column sum (dense_common.cuh). Bias: y is first filled with b, then the GEMM adds with beta = 1.
// bf16 outputs with beta != 0 (accumulation, bias): cuBLAS' bf16 epilogue was seen to round the product before
// adding beta·C (errors up to 1.3 units of bf16 rounding against an fp32 reference on the H200), so such products
// go to an fp32 scratch and one kernel forms alpha·AB + beta·C in fp32 and rounds once.
#include <climits>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {
// C_b[r, c] = bf16(prod[b, r, c] + beta·C_b[r, c]), prod dense [batch, M, N] fp32.
__global__ void add_product_kernel(const float* prod, int64_t M, int64_t N, int64_t batch, float beta, bf16* C,
                                   int64_t ldc, int64_t sc) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < batch * M * N;
       e += int64_t(gridDim.x) * blockDim.x) {
    bf16* c = C + (e / (M * N)) * sc + ((e / N) % M) * ldc + e % N;
    *c = __float2bfloat16_rn(prod[e] + beta * __bfloat162float(*c));
  }
}
}  // namespace

void gemm_any(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
              cudaDataType_t type_ab, int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb, float beta,
              void* C, cudaDataType_t type_c, int64_t ldc, int64_t sc, int64_t batch) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (type_c == CUDA_R_16BF && beta != 0.f) {  // one rounding: see the header comment
    Scratch<float> prod(ctx.stream(), size_t(batch * M * N));
    gemm_any(ctx, trans_a, trans_b, M, N, K, alpha, A, type_ab, lda, sa, B, ldb, sb, 0.f, prod.get(), CUDA_R_32F, N,
             M * N, batch);
    add_product_kernel<<<elem_blocks(batch * M * N), 256, 0, ctx.stream()>>>(prod.get(), M, N, batch, beta,
                                                                             static_cast<bf16*>(C), ldc, sc);
    WATTMOE_CUDA_LAUNCHED();
    return;
  }
  WATTMOE_DENSE_REQUIRE(K > 0, "gemm_any: K must be positive");
  WATTMOE_DENSE_REQUIRE(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
                            ldc <= INT_MAX && batch <= INT_MAX,
                        "gemm: dimension exceeds INT_MAX");
  const cublasComputeType_t compute = type_ab == CUDA_R_32F ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  const cublasOperation_t opA = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opB = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (batch == 1) {
    WATTMOE_CUBLAS_CALL(cublasGemmEx(ctx.blas(), opB, opA, int(N), int(M), int(K), &alpha, B, type_ab, int(ldb), A,
                                     type_ab, int(lda), &beta, C, type_c, int(ldc), compute, CUBLAS_GEMM_DEFAULT));
  } else {
    WATTMOE_CUBLAS_CALL(cublasGemmStridedBatchedEx(ctx.blas(), opB, opA, int(N), int(M), int(K), &alpha, B, type_ab,
                                                   int(ldb), sb, A, type_ab, int(lda), sa, &beta, C, type_c, int(ldc),
                                                   sc, int(batch), compute, CUBLAS_GEMM_DEFAULT));
  }
}

namespace {

// C[M,N] = beta·C (the K = 0 product); beta = 0 writes zeros without reading C.
template <class T>
__global__ void scale_matrix_kernel(T* C, int64_t M, int64_t N, int64_t ldc, float beta) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < M * N; e += int64_t(gridDim.x) * blockDim.x) {
    T* c = C + (e / N) * ldc + e % N;
    *c = from_f<T>(beta == 0.f ? 0.f : beta * to_f(*c));
  }
}

template <class T>
__global__ void broadcast_rows_kernel(const T* b, T* y, int64_t M, int64_t N) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < M * N; e += int64_t(gridDim.x) * blockDim.x)
    y[e] = b[e % N];
}

template <class T>
struct DyAt {  // f(i, j) = dy[i, j]
  const T* dy;
  int64_t ld;
  __device__ float operator()(int64_t i, int64_t j) const { return to_f(dy[i * ld + j]); }
};

}  // namespace

template <class T>
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, float beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_matrix_kernel<T><<<elem_blocks(M * N), 256, 0, ctx.stream()>>>(C, M, N, ldc, beta);
    WATTMOE_CUDA_LAUNCHED();
    return;
  }
  gemm_any(ctx, trans_a, trans_b, M, N, K, alpha, A, cuda_type<T>(), lda, 0, B, ldb, 0, beta, C, cuda_type<T>(), ldc,
           0, 1);
}

template <class T>
void linear_fwd(Context& ctx, const T* x, const T* W, const T* b, T* y, int64_t M, int64_t in, int64_t out) {
  if (M <= 0 || out <= 0) return;
  if (b) {
    broadcast_rows_kernel<T><<<elem_blocks(M * out), 256, 0, ctx.stream()>>>(b, y, M, out);
    WATTMOE_CUDA_LAUNCHED();
  }
  gemm<T>(ctx, false, true, M, out, in, 1.f, x, in, W, in, b ? 1.f : 0.f, y, out);
}

template <class T>
void linear_bwd(Context& ctx, const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t M, int64_t in,
                int64_t out) {
  if (M <= 0) return;
  if (dx && out > 0) gemm<T>(ctx, false, false, M, in, out, 1.f, dy, out, W, in, 1.f, dx, in);
  if (dW) gemm<T>(ctx, true, false, out, in, M, 1.f, dy, out, x, in, 1.f, dW, in);
  if (db) colsum_accumulate<T>(ctx, DyAt<T>{dy, out}, M, out, db);
}

#define INST(T)                                                                                                    \
  template void gemm<T>(Context&, bool, bool, int64_t, int64_t, int64_t, float, const T*, int64_t, const T*,      \
                        int64_t, float, T*, int64_t);                                                               \
  template void linear_fwd<T>(Context&, const T*, const T*, const T*, T*, int64_t, int64_t, int64_t);              \
  template void linear_bwd<T>(Context&, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
