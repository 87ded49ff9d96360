// Device helpers shared by the dense_*.cu kernels: float <-> T conversion, deterministic block reductions (fixed
// shuffle tree, then warp partials summed in warp order: the same bits on every run), stream-ordered scratch, launch
// sizes, and the explicit-instantiation macro. No fmt here (nvcc rejects fmt 9's consteval format strings): argument
// errors go through dense_fail (context.cpp), which throws wattmoe::Error.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/attention.h"  // AttnShape
#include "ops/cuda/context.h"

namespace wattmoe::cuda {

// Throws wattmoe::Error(msg) (defined in context.cpp, compiled by the host compiler).
[[noreturn]] void dense_fail(const char* msg);
#define WATTMOE_DENSE_REQUIRE(cond, msg) \
  do {                                   \
    if (!(cond)) ::wattmoe::cuda::dense_fail(msg); \
  } while (0)

// Throws unless s is a valid attention shape: heads a multiple of the KV heads, Tq > 0, hd > 0, the keys cover
// pos0 + Tq, row strides at least the rows (dense_attention.cu; both attention paths call it).
void check_attention_shape(const ops::AttnShape& s);

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `sh` holds 32 A's.
// Ends with a barrier, so the same `sh` can be reused by the next call.
template <class A>
__device__ __forceinline__ A block_sum(A v, A* sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) sh[w] = v;
  __syncthreads();
  A r = 0;
  for (int i = 0; i < nw; ++i) r += sh[i];  // every thread adds in the same order
  __syncthreads();
  return r;
}
__device__ __forceinline__ float block_max(float v, float* sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) sh[w] = v;
  __syncthreads();
  float r = -INFINITY;
  for (int i = 0; i < nw; ++i) r = fmaxf(r, sh[i]);
  __syncthreads();
  return r;
}

// Threads per row for the one-block-per-row kernels: a multiple of 32, about n/4, within [32, 1024].
inline int row_threads(int64_t n) {
  int64_t t = 32;
  while (t < 1024 && t * 4 < n) t *= 2;
  return int(t);
}
// Blocks for a grid-stride element-wise loop of n elements at 256 threads.
inline unsigned elem_blocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return unsigned(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

// Stream-ordered device scratch (cudaMallocAsync from the device's default pool), freed in stream order when it
// goes out of scope: kernels already queued keep using it safely.
template <class T>
class Scratch {
 public:
  Scratch(cudaStream_t s, size_t n) : s_(s) {
    if (n) WATTMOE_CUDA_CALL(cudaMallocAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), s));
  }
  ~Scratch() {
    if (p_) cudaFreeAsync(p_, s_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }

 private:
  cudaStream_t s_;
  T* p_ = nullptr;
};


// Strided-batched cuBLAS product, row-major: C_b[M,N] = alpha·op(A_b)·op(B_b) + beta·C_b for b < batch (A_b = A +
// b·sa elements, ...). A and B share one type (fp32 or bf16); C may be fp32 when they are bf16. fp32 inputs compute
// in CUBLAS_COMPUTE_32F_PEDANTIC (no TF32), bf16 in CUBLAS_COMPUTE_32F. beta = 0 never reads C; a bf16 C with
// beta != 0 is formed in fp32 and rounded once (through a scratch). (dense_linear.cu)
void gemm_any(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
              cudaDataType_t type_ab, int64_t lda, int64_t sa, const void* B, int64_t ldb, int64_t sb, float beta,
              void* C, cudaDataType_t type_c, int64_t ldc, int64_t sc, int64_t batch);
template <class T>
constexpr cudaDataType_t cuda_type() {
  return sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_16BF;
}

// Deterministic column sums: out[j] += Σ_{i<rows} f(i, j) for j < cols, f a device functor returning float. Pass 1
// sums fixed chunks of rows per column (each a fixed tree), pass 2 adds the chunks in order; the chunking depends
// on the shape only, so the result is bitwise the same on every run. out is rounded once.
template <class F>
__global__ void colsum_partial_kernel(F f, int64_t rows, int64_t cols, int64_t rows_per_chunk, float* part) {
  __shared__ float sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = int64_t(blockIdx.x) * 32 + tx, r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float acc = 0.f;
  if (j < cols)
    for (int64_t i = r0 + ty; i < r1; i += 8) acc += f(i, j);
  sh[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && j < cols) {
    float s = 0.f;
    for (int k = 0; k < 8; ++k) s += sh[k][tx];
    part[int64_t(blockIdx.y) * cols + j] = s;
  }
}
template <class T>
__global__ void colsum_finish_kernel(const float* part, int64_t chunks, int64_t cols, T* out) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float s = 0.f;
  for (int64_t c = 0; c < chunks; ++c) s += part[c * cols + j];
  out[j] = from_f<T>(to_f(out[j]) + s);
}
template <class T, class F>
void colsum_accumulate(Context& ctx, F f, int64_t rows, int64_t cols, T* out) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t chunks = (rows + 127) / 128 < 512 ? (rows + 127) / 128 : 512;
  const int64_t rpc = (rows + chunks - 1) / chunks;
  Scratch<float> part(ctx.stream(), size_t(chunks * cols));
  const dim3 grid(unsigned((cols + 31) / 32), unsigned(chunks));
  colsum_partial_kernel<<<grid, dim3(32, 8), 0, ctx.stream()>>>(f, rows, cols, rpc, part.get());
  WATTMOE_CUDA_LAUNCHED();
  colsum_finish_kernel<T><<<unsigned((cols + 255) / 256), 256, 0, ctx.stream()>>>(part.get(), chunks, cols, out);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda

// Instantiates a template function for float and bf16: INSTANTIATE_BOTH(M) expands M(float) M(bf16).
#define WATTMOE_INSTANTIATE_BOTH(M) M(float) M(::wattmoe::cuda::bf16)
