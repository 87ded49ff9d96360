// Element-wise ops on the GPU (dense_ops.h): SwiGLU (ops/activation.h), axpy, clamp with its backward, dtype
// conversion (one array, or many runs in one launch), and the sigmoid-gated row add of Qwen2-MoE's shared expert.
// Math in fp32, each output rounded once; backward functions accumulate. Grid-stride loops; gated_add_bwd reduces
// ⟨dout, y⟩ per row in one block (fixed order).
#include <climits>
#include <type_traits>
#include <vector>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

#define GRID_STRIDE(e, n) \
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < (n); e += int64_t(gridDim.x) * blockDim.x)

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

template <class T>
__global__ void swiglu_fwd_kernel(const T* g, const T* u, T* h, int64_t n) {
  GRID_STRIDE(i, n) {
    const float gi = to_f(g[i]);
    h[i] = from_f<T>(gi * sigmoidf(gi) * to_f(u[i]));
  }
}

template <class T>
__global__ void swiglu_bwd_kernel(const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n) {
  GRID_STRIDE(i, n) {
    const float gi = to_f(g[i]), s = sigmoidf(gi), d = to_f(dh[i]);
    if (du) du[i] = from_f<T>(to_f(du[i]) + d * gi * s);
    if (dg) dg[i] = from_f<T>(to_f(dg[i]) + d * to_f(u[i]) * s * (1.f + gi * (1.f - s)));
  }
}

template <class T>
__global__ void axpy_kernel(float alpha, const T* x, T* y, int64_t n) {
  GRID_STRIDE(i, n) y[i] = from_f<T>(to_f(y[i]) + alpha * to_f(x[i]));
}

// The same sum, 16 bytes of x and y a step (x and y 16-byte aligned, n16 chunks of 16 / sizeof(T) elements).
template <class T>
__global__ void axpy16_kernel(float alpha, const uint4* x, uint4* y, int64_t n16) {
  constexpr int per = 16 / sizeof(T);
  GRID_STRIDE(i, n16) {
    const uint4 xv = x[i];
    uint4 yv = y[i];
    const T* xs = reinterpret_cast<const T*>(&xv);
    T* ys = reinterpret_cast<T*>(&yv);
#pragma unroll
    for (int j = 0; j < per; ++j) ys[j] = from_f<T>(to_f(ys[j]) + alpha * to_f(xs[j]));
    y[i] = yv;
  }
}

template <class T>
__global__ void clamp_fwd_kernel(T* x, T* pre, float lim, int64_t n) {
  GRID_STRIDE(i, n) {
    const T v = x[i];
    if (pre) pre[i] = v;
    const float f = to_f(v);
    if (f < -lim || f > lim) x[i] = from_f<T>(f < -lim ? -lim : lim);  // NaN compares false and stays
  }
}

template <class T>
__global__ void clamp_bwd_kernel(const T* pre, float lim, T* dy, int64_t n) {
  GRID_STRIDE(i, n) if (fabsf(to_f(pre[i])) > lim) dy[i] = from_f<T>(0.f);
}

template <class Dst, class Src>
__global__ void convert_kernel(const Src* src, Dst* dst, int64_t n) {
  GRID_STRIDE(i, n) {
    if constexpr (std::is_same_v<Dst, Src>)
      dst[i] = src[i];
    else
      dst[i] = from_f<Dst>(to_f(src[i]));
  }
}

// convert_runs: each CTA converts one chunk of kRunChunk elements of one run; chunk0[r] is run r's first chunk.
constexpr int kMaxRuns = 100;  // per launch: the parameter block stays under the 4 KB kernel-argument limit
constexpr int64_t kRunChunk = 4096;
struct RunParams {
  int count;
  bool accumulate;
  int64_t src[kMaxRuns], dst[kMaxRuns], n[kMaxRuns];
  int64_t chunk0[kMaxRuns + 1];
};

template <class Dst, class Src>
__global__ void convert_runs_kernel(const Src* src, Dst* dst, const __grid_constant__ RunParams p) {
  const int64_t chunk = blockIdx.x;
  int lo = 0, hi = p.count - 1;  // the run holding this chunk: the last r with chunk0[r] <= chunk
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.chunk0[mid] <= chunk) lo = mid;
    else hi = mid - 1;
  }
  const int64_t begin = (chunk - p.chunk0[lo]) * kRunChunk, end = min(p.n[lo], begin + kRunChunk);
  const Src* s = src + p.src[lo];
  Dst* d = dst + p.dst[lo];
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    if constexpr (std::is_same_v<Dst, Src>)
      if (!p.accumulate) {
        d[i] = s[i];
        continue;
      }
    const float v = to_f(s[i]);
    d[i] = from_f<Dst>(p.accumulate ? to_f(d[i]) + v : v);
  }
}

template <class T>
__global__ void gated_add_fwd_kernel(const T* gate, const T* y, T* out, int64_t rows, int64_t H) {
  GRID_STRIDE(e, rows * H) {
    const float s = sigmoidf(to_f(gate[e / H]));
    out[e] = from_f<T>(to_f(out[e]) + s * to_f(y[e]));
  }
}

template <class T>
__global__ void gated_add_bwd_kernel(const T* gate, const T* y, const T* dout, T* dy, T* dgate, int64_t H) {
  __shared__ float sh[32];
  const int64_t off = int64_t(blockIdx.x) * H;
  const float s = sigmoidf(to_f(gate[blockIdx.x]));
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    const float d = to_f(dout[off + j]);
    if (dgate) dot += d * to_f(y[off + j]);
    if (dy) dy[off + j] = from_f<T>(to_f(dy[off + j]) + s * d);
  }
  if (!dgate) return;  // uniform across the block: no barrier is skipped by part of it
  dot = block_sum(dot, sh);
  if (threadIdx.x == 0) dgate[blockIdx.x] = from_f<T>(to_f(dgate[blockIdx.x]) + s * (1.f - s) * dot);
}

#undef GRID_STRIDE

}  // namespace

template <class T>
void swiglu_fwd(Context& ctx, const T* g, const T* u, T* h, int64_t n) {
  if (n <= 0) return;
  swiglu_fwd_kernel<T><<<elem_blocks(n), 256, 0, ctx.stream()>>>(g, u, h, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void swiglu_bwd(Context& ctx, const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n) {
  if (n <= 0 || (!dg && !du)) return;
  swiglu_bwd_kernel<T><<<elem_blocks(n), 256, 0, ctx.stream()>>>(g, u, dh, dg, du, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void axpy(Context& ctx, float alpha, const T* x, T* y, int64_t n) {
  if (n <= 0) return;
  constexpr int64_t per = 16 / sizeof(T);
  if (n % per == 0 && ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y)) & 15) == 0)
    axpy16_kernel<T><<<elem_blocks(n / per), 256, 0, ctx.stream()>>>(alpha, reinterpret_cast<const uint4*>(x),
                                                                       reinterpret_cast<uint4*>(y), n / per);
  else
    axpy_kernel<T><<<elem_blocks(n), 256, 0, ctx.stream()>>>(alpha, x, y, n);
  WATTMOE_CUDA_LAUNCHED();
}

// As std::clamp: a NaN stays NaN (and clamp_bwd passes its gradient through).
template <class T>
void clamp_fwd(Context& ctx, T* x, T* pre, float lim, int64_t n) {
  if (n <= 0) return;
  clamp_fwd_kernel<T><<<elem_blocks(n), 256, 0, ctx.stream()>>>(x, pre, lim, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void clamp_bwd(Context& ctx, const T* pre, float lim, T* dy, int64_t n) {
  if (n <= 0 || !dy) return;
  clamp_bwd_kernel<T><<<elem_blocks(n), 256, 0, ctx.stream()>>>(pre, lim, dy, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class Dst, class Src>
void convert(Context& ctx, const Src* src, Dst* dst, int64_t n) {
  if (n <= 0) return;
  convert_kernel<Dst, Src><<<elem_blocks(n), 256, 0, ctx.stream()>>>(src, dst, n);
  WATTMOE_CUDA_LAUNCHED();
}

template <class Dst, class Src>
void convert_runs(Context& ctx, const Src* src, Dst* dst, const std::vector<ConvertRun>& runs, bool accumulate) {
  RunParams p{};
  p.accumulate = accumulate;
  auto flush = [&] {
    if (p.count == 0) return;
    convert_runs_kernel<Dst, Src><<<unsigned(p.chunk0[p.count]), 256, 0, ctx.stream()>>>(src, dst, p);
    WATTMOE_CUDA_LAUNCHED();
    p.count = 0;
  };
  for (const ConvertRun& r : runs) {
    WATTMOE_DENSE_REQUIRE(r.n >= 0 && r.src >= 0 && r.dst >= 0, "convert_runs: negative offset or length");
    if (r.n == 0) continue;
    const int64_t chunks = (r.n + kRunChunk - 1) / kRunChunk;
    if (p.count == kMaxRuns || p.chunk0[p.count] + chunks > INT_MAX) flush();
    p.src[p.count] = r.src, p.dst[p.count] = r.dst, p.n[p.count] = r.n;
    p.chunk0[p.count + 1] = p.chunk0[p.count] + chunks;
    ++p.count;
  }
  flush();
}

template <class T>
void gated_add_fwd(Context& ctx, const T* gate, const T* y, T* out, int64_t rows, int64_t H) {
  if (rows <= 0 || H <= 0) return;
  gated_add_fwd_kernel<T><<<elem_blocks(rows * H), 256, 0, ctx.stream()>>>(gate, y, out, rows, H);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void gated_add_bwd(Context& ctx, const T* gate, const T* y, const T* dout, T* dy, T* dgate, int64_t rows, int64_t H) {
  if (rows <= 0 || H <= 0 || (!dy && !dgate)) return;
  WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "gated_add_bwd: too many rows");
  gated_add_bwd_kernel<T><<<unsigned(rows), row_threads(H), 0, ctx.stream()>>>(gate, y, dout, dy, dgate, H);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                                                            \
  template void swiglu_fwd<T>(Context&, const T*, const T*, T*, int64_t);                                 \
  template void swiglu_bwd<T>(Context&, const T*, const T*, const T*, T*, T*, int64_t);                   \
  template void axpy<T>(Context&, float, const T*, T*, int64_t);                                          \
  template void clamp_fwd<T>(Context&, T*, T*, float, int64_t);                                           \
  template void clamp_bwd<T>(Context&, const T*, float, T*, int64_t);                                     \
  template void gated_add_fwd<T>(Context&, const T*, const T*, T*, int64_t, int64_t);                     \
  template void gated_add_bwd<T>(Context&, const T*, const T*, const T*, T*, T*, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST
template void convert<float, float>(Context&, const float*, float*, int64_t);
template void convert<float, bf16>(Context&, const bf16*, float*, int64_t);
template void convert<bf16, float>(Context&, const float*, bf16*, int64_t);
template void convert<bf16, bf16>(Context&, const bf16*, bf16*, int64_t);
template void convert_runs<float, bf16>(Context&, const bf16*, float*, const std::vector<ConvertRun>&, bool);
template void convert_runs<bf16, float>(Context&, const float*, bf16*, const std::vector<ConvertRun>&, bool);
template void convert_runs<float, float>(Context&, const float*, float*, const std::vector<ConvertRun>&, bool);

}  // namespace wattmoe::cuda
