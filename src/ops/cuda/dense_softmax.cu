// Row-wise softmax on the GPU (dense_ops.h; ops/softmax.h): one block per row, max and Σexp in fp32 (fixed-order
// block reductions), y = exp(x − max) / Σ. y may alias x. Backward accumulates dx += y ⊙ (dy − Σ y·dy).
#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

template <class T>
__global__ void softmax_fwd_kernel(const T* x, T* y, int64_t n) {
  __shared__ float sh[32];
  const T* xi = x + int64_t(blockIdx.x) * n;
  T* yi = y + int64_t(blockIdx.x) * n;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, to_f(xi[j]));
  mx = block_max(mx, sh);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(to_f(xi[j]) - mx);
  sum = block_sum(sum, sh);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yi[j] = from_f<T>(expf(to_f(xi[j]) - mx) / sum);
}

template <class T>
__global__ void softmax_bwd_kernel(const T* y, const T* dy, T* dx, int64_t n) {
  __shared__ float sh[32];
  const int64_t off = int64_t(blockIdx.x) * n;
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += to_f(y[off + j]) * to_f(dy[off + j]);
  dot = block_sum(dot, sh);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
    dx[off + j] = from_f<T>(to_f(dx[off + j]) + to_f(y[off + j]) * (to_f(dy[off + j]) - dot));
}

}  // namespace

template <class T>
void softmax_fwd(Context& ctx, const T* x, T* y, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0) return;
  WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "softmax_fwd: too many rows");
  softmax_fwd_kernel<T><<<unsigned(rows), row_threads(n), 0, ctx.stream()>>>(x, y, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void softmax_bwd(Context& ctx, const T* y, const T* dy, T* dx, int64_t rows, int64_t n) {
  if (rows <= 0 || n <= 0 || !dx) return;
  WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "softmax_bwd: too many rows");
  softmax_bwd_kernel<T><<<unsigned(rows), row_threads(n), 0, ctx.stream()>>>(y, dy, dx, n);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                              \
  template void softmax_fwd<T>(Context&, const T*, T*, int64_t, int64_t); \
  template void softmax_bwd<T>(Context&, const T*, const T*, T*, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
