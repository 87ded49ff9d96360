// Causal GQA attention on the GPU (dense_ops.h; maths of ops/attention.h), batched over sequences. Correctness
// first: the [Tq, Tk] score matrix of every head is materialised, as on the CPU.
//   forward:  S = scale·Q_h·K_kvᵀ (cuBLAS, fp32 output even for bf16 inputs) → causal softmax in fp32 (query t sees
//             keys ≤ pos0 + t; masked entries 0) → probs (fp32, saved) → out = P·V (P rounded to T for the product).
//   backward: dP = dO·Vᵀ (fp32) → dS = scale·P⊙(dP − Σ_j P·dP) (fp32, rounded to T) → dQ += dS·K;
//             dK += dSᵀ·Q and dV += Pᵀ·dO as ONE product per KV head over its group's query heads stacked along
//             the reduction, so GQA sums in fp32 and rounds once.
// Layouts: q, dq rows of q_stride; k, v, dk, dv rows of kv_stride; out, dout dense [Tq, n_heads·hd]; sequence b
// starts at q + b·Tq·q_stride, k + b·Tk·kv_stride, out + b·Tq·n_heads·hd, probs + b·n_heads·Tq·Tk. Head h uses KV
// head h / (n_heads / n_kv).
// Speed: Q, K, V (and dO) are first gathered head-major ([b, head, t, hd], one cheap copy each), so that every
// product is ONE strided-batched cuBLAS call over all (sequence, KV head) pairs: the group's query heads are
// consecutive in the gathered Q and in probs, so they stack along M (forward, dP, dQ) or along the reduction (dK,
// dV). Results come out head-major (fp32 for gradients) and a scatter kernel writes or adds them into the strided
// rows (gradients rounded once). Before this each product was one small call per (sequence, group member).
#include <cmath>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

void check_attention_shape(const ops::AttnShape& s) {
  WATTMOE_DENSE_REQUIRE(s.n_heads > 0 && s.n_kv > 0 && s.n_heads % s.n_kv == 0, "attention: n_heads % n_kv != 0");
  WATTMOE_DENSE_REQUIRE(s.Tq > 0 && s.hd > 0 && s.pos0 >= 0 && s.Tk >= s.pos0 + s.Tq, "attention: Tk < pos0 + Tq");
  WATTMOE_DENSE_REQUIRE(s.q_stride >= s.n_heads * s.hd && s.kv_stride >= s.n_kv * s.hd, "attention: row stride too small");
}

namespace {

// One block per row r of [batch·n_heads·Tq, Tk]: softmax over the n = pos0 + t + 1 visible entries (t = r % Tq),
// zeros after; in place on P, and a copy rounded to T in PT when PT is not null.
template <class T>
__global__ void causal_softmax_kernel(float* P, T* PT, int64_t Tq, int64_t Tk, int64_t pos0) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x, n = pos0 + r % Tq + 1;
  float* p = P + r * Tk;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, p[j]);
  mx = block_max(mx, sh);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(p[j] - mx);
  sum = block_sum(sum, sh);
  const float inv = 1.f / sum;
  for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) {
    const float y = j < n ? expf(p[j] - mx) * inv : 0.f;
    p[j] = y;
    if (PT) PT[r * Tk + j] = from_f<T>(y);
  }
}

// dS = scale·P⊙(dP − Σ_j P·dP) per row (dP in fp32, in place when T is float), zeros on masked entries; also the
// probabilities rounded to T in PT when PT is not null.
template <class T>
__global__ void attn_dscore_kernel(const float* P, const float* dP, T* dS, T* PT, int64_t Tq, int64_t Tk,
                                   int64_t pos0, float scale) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x, n = pos0 + r % Tq + 1;
  const float* p = P + r * Tk;
  const float* d = dP + r * Tk;
  float dot = 0.f;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += p[j] * d[j];
  dot = block_sum(dot, sh);
  for (int64_t j = threadIdx.x; j < Tk; j += blockDim.x) {
    const float pj = p[j];
    dS[r * Tk + j] = from_f<T>(j < n ? pj * (d[j] - dot) * scale : 0.f);
    if (PT) PT[r * Tk + j] = from_f<T>(pj);
  }
}

// dst[b, h, t, :] = src[b·T + t, h·hd : (h+1)·hd] (src rows of `ld` elements).
template <class T>
__global__ void gather_heads_kernel(const T* src, int64_t ld, int64_t batch, int64_t T_, int64_t nh, int64_t hd,
                                    T* dst) {
  const int64_t total = batch * nh * T_ * hd;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % hd, t = (e / hd) % T_, h = (e / (hd * T_)) % nh, b = e / (hd * T_ * nh);
    dst[e] = src[(b * T_ + t) * ld + h * hd + i];
  }
}

// The inverse of gather_heads_kernel: src head-major [b, h, t, hd] back into rows, dst[(b·T + t)·ld + h·hd + i] =
// src[e], or += when accumulating (the sum in fp32, rounded once to T).
template <class S, class T>
__global__ void scatter_heads_kernel(const S* src, int64_t batch, int64_t T_, int64_t nh, int64_t hd, T* dst,
                                     int64_t ld, bool accumulate) {
  const int64_t total = batch * nh * T_ * hd;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e % hd, t = (e / hd) % T_, h = (e / (hd * T_)) % nh, b = e / (hd * T_ * nh);
    T* d = dst + (b * T_ + t) * ld + h * hd + i;
    const float x = to_f(src[e]);
    *d = from_f<T>(accumulate ? to_f(*d) + x : x);
  }
}

template <class T>
void gather(cudaStream_t st, const T* src, int64_t ld, int64_t batch, int64_t T_, int64_t nh, int64_t hd, T* dst) {
  gather_heads_kernel<T><<<elem_blocks(batch * nh * T_ * hd), 256, 0, st>>>(src, ld, batch, T_, nh, hd, dst);
  WATTMOE_CUDA_LAUNCHED();
}
template <class S, class T>
void scatter(cudaStream_t st, const S* src, int64_t batch, int64_t T_, int64_t nh, int64_t hd, T* dst, int64_t ld,
             bool accumulate) {
  scatter_heads_kernel<S, T><<<elem_blocks(batch * nh * T_ * hd), 256, 0, st>>>(src, batch, T_, nh, hd, dst, ld,
                                                                                 accumulate);
  WATTMOE_CUDA_LAUNCHED();
}

// The sizes both directions use (checked): query heads per KV head, row widths, the per-pair probs block, and the
// softmax scale 1/sqrt(hd).
struct Dims {
  int64_t group, nhd, PP, rows, pairs, gq;
  float scale;
  Dims(const ops::AttnShape& s, int64_t batch)
      : group((check_attention_shape(s), s.n_heads / s.n_kv)), nhd(int64_t(s.n_heads) * s.hd), PP(int64_t(s.Tq) * s.Tk),
        rows(batch * s.n_heads * s.Tq), pairs(batch * s.n_kv), gq(group * s.Tq),
        scale(float(1.0 / std::sqrt(double(s.hd)))) {
    WATTMOE_DENSE_REQUIRE(rows <= INT32_MAX, "attention: too many rows");
  }
};

}  // namespace

// Below, a "pair" is (sequence b, KV head kv), pairs = batch·n_kv, in that order; per pair the gathered Q / dO block
// is [group·Tq, hd] (its group's query heads one after another), the gathered K / V block [Tk, hd], and the probs /
// scores block [group·Tq, Tk]: all at uniform strides, so each product is one strided-batched call.
template <class T>
void attention_fwd(Context& ctx, const T* q, const T* k, const T* v, T* out, float* probs, const ops::AttnShape& s,
                   int64_t batch) {
  if (batch <= 0) return;
  const Dims d(s, batch);
  const int64_t group = d.group, hd = s.hd, nhd = d.nhd, PP = d.PP, rows = d.rows, pairs = d.pairs, gq = d.gq;
  const float scale = d.scale;
  constexpr bool kF32 = sizeof(T) == 4;
  const cudaDataType_t ty = cuda_type<T>();
  cudaStream_t st = ctx.stream();
  Scratch<T> qh(st, size_t(rows * hd)), kh(st, size_t(pairs * s.Tk * hd)), vh(st, size_t(pairs * s.Tk * hd));
  gather(st, q, s.q_stride, batch, s.Tq, s.n_heads, hd, qh.get());
  gather(st, k, s.kv_stride, batch, s.Tk, s.n_kv, hd, kh.get());
  gather(st, v, s.kv_stride, batch, s.Tk, s.n_kv, hd, vh.get());
  Scratch<float> s_scores(st, probs ? 0 : size_t(rows * s.Tk));
  Scratch<T> s_pt(st, kF32 ? 0 : size_t(rows * s.Tk));
  float* P = probs ? probs : s_scores.get();
  T* PT = kF32 ? nullptr : s_pt.get();
  gemm_any(ctx, false, true, gq, s.Tk, hd, scale, qh.get(), ty, hd, gq * hd, kh.get(), hd, s.Tk * hd, 0.f, P,
           CUDA_R_32F, s.Tk, group * PP, pairs);
  causal_softmax_kernel<T><<<unsigned(rows), row_threads(s.Tk), 0, st>>>(P, PT, s.Tq, s.Tk, s.pos0);
  WATTMOE_CUDA_LAUNCHED();
  const T* Pv = kF32 ? reinterpret_cast<const T*>(P) : PT;
  T* oh = qh.get();  // Q is no longer needed: the head-major output takes its place
  gemm_any(ctx, false, false, gq, hd, s.Tk, 1.f, Pv, ty, s.Tk, group * PP, vh.get(), hd, s.Tk * hd, 0.f, oh, ty, hd,
           gq * hd, pairs);
  scatter<T, T>(st, oh, batch, s.Tq, s.n_heads, hd, out, nhd, false);
}

template <class T>
void attention_bwd(Context& ctx, const T* q, const T* k, const T* v, const float* probs, const T* dout, T* dq, T* dk,
                   T* dv, const ops::AttnShape& s, int64_t batch) {
  if (batch <= 0 || (!dq && !dk && !dv)) return;
  const Dims d(s, batch);
  const int64_t group = d.group, hd = s.hd, nhd = d.nhd, PP = d.PP, rows = d.rows, pairs = d.pairs, gq = d.gq;
  const float scale = d.scale;
  constexpr bool kF32 = sizeof(T) == 4;
  const cudaDataType_t ty = cuda_type<T>();
  cudaStream_t st = ctx.stream();

  Scratch<T> doh(st, size_t(rows * hd)), vh(st, size_t(pairs * s.Tk * hd));
  gather(st, dout, nhd, batch, s.Tq, s.n_heads, hd, doh.get());
  gather(st, v, s.kv_stride, batch, s.Tk, s.n_kv, hd, vh.get());
  Scratch<float> s_dp(st, size_t(rows * s.Tk));
  Scratch<T> s_ds(st, kF32 ? 0 : size_t(rows * s.Tk)), s_pt(st, kF32 || !dv ? 0 : size_t(rows * s.Tk));
  float* dP = s_dp.get();
  gemm_any(ctx, false, true, gq, s.Tk, hd, 1.f, doh.get(), ty, hd, gq * hd, vh.get(), hd, s.Tk * hd, 0.f, dP,
           CUDA_R_32F, s.Tk, group * PP, pairs);
  T* dS = kF32 ? reinterpret_cast<T*>(dP) : s_ds.get();
  T* PT = kF32 ? nullptr : s_pt.get();
  attn_dscore_kernel<T><<<unsigned(rows), row_threads(s.Tk), 0, st>>>(probs, dP, dS, PT, s.Tq, s.Tk, s.pos0, scale);
  WATTMOE_CUDA_LAUNCHED();

  if (dq) {  // dQ (head-major, fp32) = dS·K per pair, then added into the strided rows
    Scratch<T> kh(st, size_t(pairs * s.Tk * hd));
    Scratch<float> g(st, size_t(rows * hd));
    gather(st, k, s.kv_stride, batch, s.Tk, s.n_kv, hd, kh.get());
    gemm_any(ctx, false, false, gq, hd, s.Tk, 1.f, dS, ty, s.Tk, group * PP, kh.get(), hd, s.Tk * hd, 0.f, g.get(),
             CUDA_R_32F, hd, gq * hd, pairs);
    scatter<float, T>(st, g.get(), batch, s.Tq, s.n_heads, hd, dq, s.q_stride, true);
  }
  // dK_kv = Σ_{h in group} dS_hᵀ·Q_h and dV_kv = Σ_h P_hᵀ·dO_h: one product per pair with reduction length group·Tq
  // (fp32 accumulation inside cuBLAS, in a fixed order), then added into the strided rows.
  Scratch<float> g(st, dk || dv ? size_t(pairs * s.Tk * hd) : 0);
  if (dk) {
    Scratch<T> qh(st, size_t(rows * hd));
    gather(st, q, s.q_stride, batch, s.Tq, s.n_heads, hd, qh.get());
    gemm_any(ctx, true, false, s.Tk, hd, gq, 1.f, dS, ty, s.Tk, group * PP, qh.get(), hd, gq * hd, 0.f, g.get(),
             CUDA_R_32F, hd, s.Tk * hd, pairs);
    scatter<float, T>(st, g.get(), batch, s.Tk, s.n_kv, hd, dk, s.kv_stride, true);
  }
  if (dv) {
    const T* Pv = kF32 ? reinterpret_cast<const T*>(probs) : PT;
    gemm_any(ctx, true, false, s.Tk, hd, gq, 1.f, Pv, ty, s.Tk, group * PP, doh.get(), hd, gq * hd, 0.f, g.get(),
             CUDA_R_32F, hd, s.Tk * hd, pairs);
    scatter<float, T>(st, g.get(), batch, s.Tk, s.n_kv, hd, dv, s.kv_stride, true);
  }
}

#define INST(T)                                                                                                  \
  template void attention_fwd<T>(Context&, const T*, const T*, const T*, T*, float*, const ops::AttnShape&,     \
                                 int64_t);                                                                       \
  template void attention_bwd<T>(Context&, const T*, const T*, const T*, const float*, const T*, T*, T*, T*,    \
                                 const ops::AttnShape&, int64_t);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
