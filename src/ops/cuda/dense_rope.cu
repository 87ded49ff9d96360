// RoPE on the GPU (dense_ops.h; maths of ops/rope.h, rotate-half). The float tables are the host table's doubles
// rounded to float, as the CPU op rounds them, and the rotation is evaluated with explicit round-to-nearest
// multiplies and adds (no FMA contraction), so fp32 results match ops::rope_apply bit for bit. Token i of the
// B·S tokens has position pos0 + i % S (rope_apply), or its own position pos[i] (rope_apply_at: decode rows of
// sequences at different lengths). In place; inverse applies the transpose rotation (the backward).
#include <algorithm>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

// One block per token; its threads walk the token's (head, i) pairs in 32-bit arithmetic.
template <class T>
__global__ void rope_kernel(T* x, int64_t S, int n_heads, int half, int64_t stride, const float* cos_t,
                            const float* sin_t, int64_t row0, const int32_t* pos, bool inverse) {
  const int64_t t = blockIdx.x;
  const int64_t row = pos ? pos[t] - row0 : row0 + t % S;  // table row of this token's position
  const float *ct = cos_t + row * half, *st = sin_t + row * half;
  T* xt = x + t * stride;
  for (int e = threadIdx.x; e < n_heads * half; e += blockDim.x) {
    const int i = e % half, h = e / half;
    const float c = ct[i], s = inverse ? -st[i] : st[i];
    T* v = xt + h * 2 * half;
    const float a = to_f(v[i]), b = to_f(v[i + half]);
    v[i] = from_f<T>(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    v[i + half] = from_f<T>(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
  }
}

// Threads per token: the (head, i) pairs rounded up to a warp, at most 256.
inline int rope_threads(int64_t pairs) { return int(std::min<int64_t>(256, (pairs + 31) / 32 * 32)); }

}  // namespace

template <class T>
void rope_apply(Context& ctx, T* x, int64_t B, int64_t S, int64_t n_heads, int64_t head_dim, int64_t stride,
                const DeviceRope& tab, int64_t pos0, bool inverse) {
  if (B <= 0 || S <= 0 || n_heads <= 0) return;
  WATTMOE_DENSE_REQUIRE(head_dim % 2 == 0 && head_dim / 2 == tab.half, "rope_apply: head_dim does not match the table");
  WATTMOE_DENSE_REQUIRE(pos0 >= tab.pos0 && pos0 + S <= tab.pos0 + tab.n_pos, "rope_apply: positions outside the table");
  const int64_t half = head_dim / 2;
  WATTMOE_DENSE_REQUIRE(B * S <= INT32_MAX && n_heads * half <= INT32_MAX, "rope_apply: too many tokens or heads");
  rope_kernel<T><<<unsigned(B * S), rope_threads(n_heads * half), 0, ctx.stream()>>>(
      x, S, int(n_heads), int(half), stride, tab.cos.data(), tab.sin.data(), pos0 - tab.pos0, nullptr, inverse);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void rope_apply_at(Context& ctx, T* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t stride,
                   const DeviceRope& tab, const int32_t* pos, bool inverse) {
  if (n <= 0 || n_heads <= 0) return;
  WATTMOE_DENSE_REQUIRE(head_dim % 2 == 0 && head_dim / 2 == tab.half, "rope_apply_at: head_dim does not match the table");
  const int64_t half = head_dim / 2;
  WATTMOE_DENSE_REQUIRE(n <= INT32_MAX && n_heads * half <= INT32_MAX, "rope_apply_at: too many tokens or heads");
  rope_kernel<T><<<unsigned(n), rope_threads(n_heads * half), 0, ctx.stream()>>>(
      x, 1, int(n_heads), int(half), stride, tab.cos.data(), tab.sin.data(), tab.pos0, pos, inverse);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                                                              \
  template void rope_apply<T>(Context&, T*, int64_t, int64_t, int64_t, int64_t, int64_t, const DeviceRope&, \
                              int64_t, bool);                                                           \
  template void rope_apply_at<T>(Context&, T*, int64_t, int64_t, int64_t, int64_t, const DeviceRope&,          \
                                 const int32_t*, bool);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
