// Decode attention over per-row KV caches (dense_ops.h): n query rows, one new token each, every row with its own
// cache (a served sequence's slot) and its own length — the varlen step of continuous batching. The CPU reference is
// ops::attention_fwd with Tq = 1, Tk = pos + 1, pos0 = pos on that row's cache (tests/gpu/dense_ops_test.cpp).
//   append:    k_dst[r][pos[r]·kv_stride ..] = k[r], the same for v (after RoPE and clipping, as the model's caches).
//   attention: out[r, h] = Σ_{j ≤ pos[r]} softmax_j(scale·q[r,h]·k_r[j, h/G]) · v_r[j, h/G], G = n_heads / n_kv.
// One CTA per (row, head), 4 warps: warp w takes keys j ≡ w (mod 4); a key's score is one warp-wide dot product
// (lane i holds elements i, i+32, ... of the head), folded into the warp's running max, denominator and fp32 output
// accumulator (the online softmax); the 4 warps' partial results are combined in shared memory at the end and the
// output is rounded to T once. Precision differs from the batched attention_fwd only in rounding: that path rounds
// the probabilities to T before P·V (bf16) and sums in cuBLAS's order; here P stays fp32. Needs hd ≤ 256.
#include <cmath>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

constexpr int kRowWarps = 4;
constexpr int kMaxHdPerLane = 8;  // hd ≤ 32·8 = 256

template <class T>
__global__ void kv_append_rows_kernel(const T* k, const T* v, int64_t n, int64_t kvd, T* const* k_dst,
                                      T* const* v_dst, const int32_t* pos) {
  const int64_t total = n * kvd;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / kvd, i = e % kvd, at = int64_t(pos[r]) * kvd + i;
    k_dst[r][at] = k[e];
    v_dst[r][at] = v[e];
  }
}

template <class T>
__global__ void __launch_bounds__(kRowWarps * 32)
    attention_rows_kernel(const T* q, int64_t q_stride, const T* const* k_rows, const T* const* v_rows,
                          int64_t kv_stride, const int32_t* pos, T* out, int n_heads, int group, int hd, float scale) {
  const int r = blockIdx.x, h = blockIdx.y, kvh = h / group;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int len = pos[r] + 1;
  const T* qh = q + int64_t(r) * q_stride + int64_t(h) * hd;
  const T* kb = k_rows[r] + int64_t(kvh) * hd;
  const T* vb = v_rows[r] + int64_t(kvh) * hd;
  float qv[kMaxHdPerLane], acc[kMaxHdPerLane];
#pragma unroll
  for (int c = 0; c < kMaxHdPerLane; ++c) {
    const int i = lane + 32 * c;
    qv[c] = i < hd ? to_f(qh[i]) : 0.f;
    acc[c] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  for (int j = warp; j < len; j += kRowWarps) {
    const T* kj = kb + int64_t(j) * kv_stride;
    float dot = 0.f;
#pragma unroll
    for (int c = 0; c < kMaxHdPerLane; ++c) {
      const int i = lane + 32 * c;
      if (i < hd) dot += qv[c] * to_f(kj[i]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float s = dot * scale, m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), p = expf(s - m_new);  // corr = 0 on the first key (m = −inf)
    l = l * corr + p;
    const T* vj = vb + int64_t(j) * kv_stride;
#pragma unroll
    for (int c = 0; c < kMaxHdPerLane; ++c) {
      const int i = lane + 32 * c;
      if (i < hd) acc[c] = acc[c] * corr + p * to_f(vj[i]);
    }
    m = m_new;
  }
  __shared__ float s_m[kRowWarps], s_l[kRowWarps];
  __shared__ float s_acc[kRowWarps][32 * kMaxHdPerLane];
  if (lane == 0) s_m[warp] = m, s_l[warp] = l;
#pragma unroll
  for (int c = 0; c < kMaxHdPerLane; ++c) s_acc[warp][lane + 32 * c] = acc[c];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kRowWarps; ++w) M = fmaxf(M, s_m[w]);  // finite: len ≥ 1, so warp 0 saw a key
  float L = 0.f, f[kRowWarps];
  for (int w = 0; w < kRowWarps; ++w) f[w] = expf(s_m[w] - M), L += s_l[w] * f[w];  // a keyless warp: f = 0
  T* o = out + int64_t(r) * n_heads * hd + int64_t(h) * hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float y = 0.f;
    for (int w = 0; w < kRowWarps; ++w) y += s_acc[w][i] * f[w];
    o[i] = from_f<T>(y / L);
  }
}

}  // namespace

template <class T>
void kv_append_rows(Context& ctx, const T* k, const T* v, int64_t n, int64_t kvd, T* const* k_dst, T* const* v_dst,
                    const int32_t* pos) {
  if (n <= 0 || kvd <= 0) return;
  kv_append_rows_kernel<T><<<elem_blocks(n * kvd), 256, 0, ctx.stream()>>>(k, v, n, kvd, k_dst, v_dst, pos);
  WATTMOE_CUDA_LAUNCHED();
}

template <class T>
void attention_rows_fwd(Context& ctx, const T* q, int64_t q_stride, const T* const* k_rows, const T* const* v_rows,
                        int64_t kv_stride, const int32_t* pos, T* out, int64_t n, int64_t n_heads, int64_t n_kv,
                        int64_t hd) {
  if (n <= 0) return;
  WATTMOE_DENSE_REQUIRE(n_heads > 0 && n_kv > 0 && n_heads % n_kv == 0, "attention_rows: n_heads % n_kv != 0");
  WATTMOE_DENSE_REQUIRE(hd > 0 && hd <= 32 * kMaxHdPerLane, "attention_rows: head_dim must be in 1..256");
  WATTMOE_DENSE_REQUIRE(q_stride >= n_heads * hd && kv_stride >= n_kv * hd, "attention_rows: row stride too small");
  WATTMOE_DENSE_REQUIRE(n <= INT32_MAX && n_heads <= 65535, "attention_rows: too many rows or heads");
  const float scale = float(1.0 / std::sqrt(double(hd)));  // as attention_fwd
  attention_rows_kernel<T><<<dim3(unsigned(n), unsigned(n_heads)), kRowWarps * 32, 0, ctx.stream()>>>(
      q, q_stride, k_rows, v_rows, kv_stride, pos, out, int(n_heads), int(n_heads / n_kv), int(hd), scale);
  WATTMOE_CUDA_LAUNCHED();
}

#define INST(T)                                                                                                  \
  template void kv_append_rows<T>(Context&, const T*, const T*, int64_t, int64_t, T* const*, T* const*,         \
                                  const int32_t*);                                                               \
  template void attention_rows_fwd<T>(Context&, const T*, int64_t, const T* const*, const T* const*, int64_t,   \
                                      const int32_t*, T*, int64_t, int64_t, int64_t, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
