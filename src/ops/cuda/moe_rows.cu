#include "ops/cuda/moe_rows.h"

namespace wattmoe::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_f(float x) { return x; }
__device__ __forceinline__ float load_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void store_f(float* p, float x) { *p = x; }
__device__ __forceinline__ void store_f(bf16* p, float x) { *p = __float2bfloat16_rn(x); }

// One block per row; threads stride over columns.
template <class T>
__global__ void gather_rows_kernel(const T* src, const int32_t* idx, const float* scale, T* dst, int64_t H) {
  const int64_t r = blockIdx.x;
  const float s = scale ? scale[r] : 1.f;
  const T* in = src + int64_t(idx[r]) * H;
  T* out = dst + r * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) store_f(out + j, s * load_f(in[j]));
}

template <class T>
__global__ void sum_rows_kernel(const T* src, const int64_t* row_of, const float* weight, T* dst, int k, int64_t H) {
  const int64_t t = blockIdx.x;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < k; ++s) {
      const int64_t r = row_of[t * k + s];
      if (r < 0) continue;
      const float w = weight ? weight[t * k + s] : 1.f;
      acc += w * load_f(src[r * H + j]);
    }
    store_f(dst + t * H + j, load_f(dst[t * H + j]) + acc);
  }
}

// One warp per row: lane partial sums in j order, then a fixed tree reduction.
template <class T>
__global__ void row_dots_kernel(const T* a, const int32_t* idx, const T* b, float* out, int64_t rows, int64_t H) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // whole warps leave together (r is uniform across a warp)
  const T* x = a + int64_t(idx[r]) * H;
  const T* y = b + r * H;
  float acc = 0.f;
  for (int64_t j = lane; j < H; j += 32) acc += load_f(x[j]) * load_f(y[j]);
  for (int o = 16; o > 0; o /= 2) acc += __shfl_down_sync(0xffffffffu, acc, o);
  if (lane == 0) out[r] = acc;
}

// One thread per token: the token's slots (S ≤ a few) in registers-or-local memory, then its E logits in order.
template <class T>
__global__ void router_backward_kernel(const int32_t* ids, const float* probs, const float* weights,
                                       const int64_t* row_of, const float* dweight_rows, const float* drouter,
                                       bool renorm, int64_t N, int S, int E, T* dlogits) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= N) return;
  const int32_t* id = ids + t * S;
  const float* p = probs + t * E;
  float sum = 0.f, wdot = 0.f;
  for (int s = 0; s < S; ++s) {
    if (id[s] < 0) continue;
    const int64_t r = row_of[t * S + s];
    const float dw = r >= 0 ? dweight_rows[r] : 0.f;
    sum += p[id[s]];
    wdot += dw * weights[t * S + s];
  }
  // dprobs_e is non-zero only for the token's selected experts (each at most once).
  auto dprob = [&](int e) {
    for (int s = 0; s < S; ++s)
      if (id[s] == e) {
        const int64_t r = row_of[t * S + s];
        const float dw = r >= 0 ? dweight_rows[r] : 0.f;
        return renorm && sum > 0.f ? (dw - wdot) / sum : dw;
      }
    return 0.f;
  };
  float dot = 0.f;
  for (int e = 0; e < E; ++e) dot += p[e] * dprob(e);
  for (int e = 0; e < E; ++e) {
    const float base = drouter ? drouter[t * E + e] : 0.f;
    store_f(dlogits + t * E + e, base + p[e] * (dprob(e) - dot));
  }
}

int threads_for(int64_t H) { return int(H >= kThreads ? kThreads : ((H + 31) / 32) * 32); }

}  // namespace

template <class T>
void gather_rows(Context& ctx, const T* src, const int32_t* idx, const float* scale, T* dst, int64_t rows, int64_t H) {
  if (rows <= 0 || H <= 0) return;
  gather_rows_kernel<T><<<unsigned(rows), threads_for(H), 0, ctx.stream()>>>(src, idx, scale, dst, H);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void sum_rows(Context& ctx, const T* src, const int64_t* row_of, const float* weight, T* dst, int64_t N, int k,
              int64_t H) {
  if (N <= 0 || H <= 0 || k <= 0) return;
  sum_rows_kernel<T><<<unsigned(N), threads_for(H), 0, ctx.stream()>>>(src, row_of, weight, dst, k, H);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void row_dots(Context& ctx, const T* a, const int32_t* idx, const T* b, float* out, int64_t rows, int64_t H) {
  if (rows <= 0) return;
  constexpr int kWarps = 8;
  row_dots_kernel<T><<<unsigned((rows + kWarps - 1) / kWarps), kWarps * 32, 0, ctx.stream()>>>(a, idx, b, out, rows, H);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void router_backward(Context& ctx, const int32_t* ids, const float* probs, const float* weights, const int64_t* row_of,
                     const float* dweight_rows, const float* drouter, bool renorm, int64_t N, int S, int E,
                     T* dlogits) {
  if (N <= 0) return;
  router_backward_kernel<T><<<unsigned((N + 127) / 128), 128, 0, ctx.stream()>>>(
      ids, probs, weights, row_of, dweight_rows, drouter, renorm, N, S, E, dlogits);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                                                                \
  template void gather_rows<T>(Context&, const T*, const int32_t*, const float*, T*, int64_t, int64_t);        \
  template void sum_rows<T>(Context&, const T*, const int64_t*, const float*, T*, int64_t, int, int64_t);      \
  template void row_dots<T>(Context&, const T*, const int32_t*, const T*, float*, int64_t, int64_t);          \
  template void router_backward<T>(Context&, const int32_t*, const float*, const float*, const int64_t*,         \
                                   const float*, const float*, bool, int64_t, int, int, T*);
INST(float)
INST(bf16)
#undef INST

}  // namespace wattmoe::cuda
