// RMSNorm on the GPU (dense_ops.h; maths of ops/norm.h): y = w ⊙ x · r, r = (mean(x²) + eps)^-½ in fp32, one
// warp per row with 16-byte loads where the width and alignment allow, else one block per row. rstd [rows] is saved
// in fp32. Backward accumulates: dx += w⊙dy·r − (Σ w·dy·x)·r³/dim · x per row (one block per row), dw += Σ_rows
// dy·x·r by the deterministic two-pass column sum (no atomics).
#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

// x and y may alias: each thread reads x[j] before writing y[j] for the same j, after the reduction's barriers.
template <class T>
__global__ void rmsnorm_fwd_kernel(const T* x, const T* w, T* y, float* rstd, int64_t dim, float eps) {
  __shared__ float sh[32];
  const T* xi = x + int64_t(blockIdx.x) * dim;
  T* yi = y + int64_t(blockIdx.x) * dim;
  float ss = 0.f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float v = to_f(xi[j]);
    ss += v * v;
  }
  ss = block_sum(ss, sh);
  const float r = 1.f / sqrtf(ss / float(dim) + eps);
  if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) yi[j] = from_f<T>(to_f(w[j]) * (to_f(xi[j]) * r));
}

// One warp per row, 16 bytes a step (dim a multiple of 16 / sizeof(T), rows 16-byte aligned): each lane sums the
// squares of its chunks in order, then the fixed xor tree; the second pass reads the (cached) row again and writes y.
// x and y may alias: a lane reads each of its chunks before writing it, after the reduction.
template <class T>
__global__ void rmsnorm_fwd_warp_kernel(const T* x, const T* w, T* y, float* rstd, int64_t rows, int chunks,
                                        float eps) {
  constexpr int per = 16 / sizeof(T);
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const uint4* xi = reinterpret_cast<const uint4*>(x) + row * chunks;
  uint4* yi = reinterpret_cast<uint4*>(y) + row * chunks;
  const uint4* wv = reinterpret_cast<const uint4*>(w);
  float ss = 0.f;
  for (int c = lane; c < chunks; c += 32) {
    const uint4 v = xi[c];
    const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int k = 0; k < per; ++k) ss += to_f(e[k]) * to_f(e[k]);
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / float(chunks * per) + eps);
  if (rstd && lane == 0) rstd[row] = r;
  for (int c = lane; c < chunks; c += 32) {
    const uint4 v = xi[c], wc = wv[c];
    const T *e = reinterpret_cast<const T*>(&v), *we = reinterpret_cast<const T*>(&wc);
    uint4 out;
    T* o = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < per; ++k) o[k] = from_f<T>(to_f(we[k]) * (to_f(e[k]) * r));
    yi[c] = out;
  }
}

template <class T>
__global__ void rmsnorm_bwd_dx_kernel(const T* x, const T* w, const float* rstd, const T* dy, T* dx, int64_t dim) {
  __shared__ float sh[32];
  const int64_t off = int64_t(blockIdx.x) * dim;
  const float r = rstd[blockIdx.x];
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) dot += to_f(w[j]) * to_f(dy[off + j]) * to_f(x[off + j]);
  dot = block_sum(dot, sh);
  const float c = dot * r * r * r / float(dim);
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
    dx[off + j] = from_f<T>(to_f(dx[off + j]) + (to_f(w[j]) * to_f(dy[off + j]) * r - c * to_f(x[off + j])));
}

template <class T>
struct DwTerm {  // f(i, j) = dy[i, j] · x[i, j] · rstd[i]
  const T *x, *dy;
  const float* rstd;
  int64_t dim;
  __device__ float operator()(int64_t i, int64_t j) const {
    return to_f(dy[i * dim + j]) * to_f(x[i * dim + j]) * rstd[i];
  }
};

}  // namespace

template <class T>
void rmsnorm_fwd(Context& ctx, const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t dim, double eps) {
  if (rows <= 0 || dim <= 0) return;
  WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "rmsnorm_fwd: too many rows");
  constexpr int64_t per = 16 / sizeof(T), warps = 8;
  if (dim % per == 0 && dim / per <= INT32_MAX &&
      ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(w) | reinterpret_cast<uintptr_t>(y)) & 15) == 0)
    rmsnorm_fwd_warp_kernel<T><<<unsigned((rows + warps - 1) / warps), unsigned(32 * warps), 0, ctx.stream()>>>(
        x, w, y, rstd, rows, int(dim / per), float(eps));
  else
    rmsnorm_fwd_kernel<T><<<unsigned(rows), row_threads(dim), 0, ctx.stream()>>>(x, w, y, rstd, dim, float(eps));
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void rmsnorm_bwd(Context& ctx, const T* x, const T* w, const float* rstd, const T* dy, T* dx, T* dw, int64_t rows,
                 int64_t dim) {
  if (rows <= 0 || dim <= 0) return;
  WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "rmsnorm_bwd: too many rows");
  if (dw) colsum_accumulate<T>(ctx, DwTerm<T>{x, dy, rstd, dim}, rows, dim, dw);
  if (dx) {
    rmsnorm_bwd_dx_kernel<T><<<unsigned(rows), row_threads(dim), 0, ctx.stream()>>>(x, w, rstd, dy, dx, dim);
    WATTMOE_CUDA_LAUNCHED();
  }
}

#define INST(T)                                                                                                  \
  template void rmsnorm_fwd<T>(Context&, const T*, const T*, T*, float*, int64_t, int64_t, double);              \
  template void rmsnorm_bwd<T>(Context&, const T*, const T*, const float*, const T*, T*, T*, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
