// Decode path of the MoE layer (T <= kDecodeMaxTokens): GEMV-like, bound by expert-weight bandwidth.
//  gate_up: h_dec[p, i] = bf16(silu(x[t]·gate[e,i]) · (x[t]·up[e,i])) for every pair p = t*S+s routed to e.
//  down:    y_dec[p, n] = bf16(w_p · Σ_i h_dec[p,i]·down[e,n,i]).     h_dec [T*S, I], y_dec [T*S, H]; overwrites the
//  rows of routed pairs only (unused slots, id -1, are no expert's pairs).
// Grid = (output-row slices, E). A CTA of 8 warps returns at once when counts[e] == 0; otherwise it gathers the
// pairs of expert e (in pair order, so results do not depend on scheduling) and each warp streams 4 weight rows
// (gated: gate and up rows of 2 outputs; down: 4 outputs) once, 16 bytes a lane, one chunk ahead, with fp32 FMAs
// against every routed token's activations (read through L1). One instantiation per token bound (4, 8): the
// accumulators [4 rows][bound] live in registers. Requires H % 8 == 0 and I % 8 == 0.
#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {
namespace {

constexpr int kDecWarps = 8;

template <bool GATED, int MAXT>
__global__ void __launch_bounds__(kDecWarps * 32) decode_kernel(DecodeArgs a) {
  const int e = blockIdx.y;
  if (a.counts[e] == 0) return;
  __shared__ int s_pair[MAXT];
  __shared__ float s_w[MAXT];
  __shared__ int s_n;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int pairs = a.T * a.slots;
  if (warp == 0) {
    int n = 0;
    for (int p0 = 0; p0 < pairs; p0 += 32) {
      const int p = p0 + lane;
      const bool hit = p < pairs && a.topk_ids[p] == e;
      const uint32_t b = __ballot_sync(0xffffffffu, hit);
      if (hit) {
        const int idx = n + __popc(b & ((1u << lane) - 1u));
        if (idx < MAXT) s_pair[idx] = p, s_w[idx] = a.topk_w[p];
      }
      n += __popc(b);
    }
    if (lane == 0) s_n = n < MAXT ? n : MAXT;  // n <= T <= MAXT: an expert appears at most once per token
  }
  __syncthreads();
  const int n_e = s_n;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  constexpr int kOutPerWarp = GATED ? 2 : 4;
  const int o0 = (blockIdx.x * kDecWarps + warp) * kOutPerWarp;
  if (o0 >= N) return;

  const bf16* wrow[4];
  bool wok[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int out = GATED ? o0 + (r >> 1) : o0 + r;
    const bf16* mat = GATED ? ((r & 1) ? a.up : a.gate) : a.down;
    wok[r] = out < N;
    wrow[r] = mat + (size_t(e) * N + (out < N ? out : 0)) * K;
  }
  const bf16* in[MAXT];
#pragma unroll
  for (int t = 0; t < MAXT; ++t) {
    const int p = t < n_e ? s_pair[t] : 0;
    in[t] = GATED ? a.x + size_t(p / a.slots) * K : a.h_dec + size_t(p) * K;
  }

  float acc[4][MAXT];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int t = 0; t < MAXT; ++t) acc[r][t] = 0.f;

  const int nch = K / 8;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 cur[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) cur[r] = (wok[r] && lane < nch) ? ld_stream(wrow[r] + lane * 8) : zero;
  for (int c = lane; c < nch; c += 32) {
    uint4 nxt[4];
    const bool more = c + 32 < nch;
#pragma unroll
    for (int r = 0; r < 4; ++r) nxt[r] = (wok[r] && more) ? ld_stream(wrow[r] + (c + 32) * 8) : zero;
    float wf[4][8];
#pragma unroll
    for (int r = 0; r < 4; ++r) unpack8(cur[r], wf[r]);
#pragma unroll
    for (int t = 0; t < MAXT; ++t) {
      if (t < n_e) {
        float xf[8];
        unpack8(ld_ro(in[t] + c * 8), xf);
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int q = 0; q < 8; ++q) acc[r][t] = fmaf(wf[r][q], xf[q], acc[r][t]);
      }
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) cur[r] = nxt[r];
  }

#pragma unroll
  for (int t = 0; t < MAXT; ++t) {
    if (t >= n_e) break;
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[r][t] = warp_sum(acc[r][t]);
    if (lane == 0) {
      const int p = s_pair[t];
      if constexpr (GATED) {
#pragma unroll
        for (int oo = 0; oo < 2; ++oo)
          if (o0 + oo < N)
            a.h_dec[size_t(p) * N + o0 + oo] = __float2bfloat16_rn(silu(acc[2 * oo][t]) * acc[2 * oo + 1][t]);
      } else {
#pragma unroll
        for (int r = 0; r < 4; ++r)
          if (o0 + r < N) a.y_dec[size_t(p) * N + o0 + r] = __float2bfloat16_rn(s_w[t] * acc[r][t]);
      }
    }
  }
}

template <bool GATED, int MAXT>
void launch_decode(const DecodeArgs& a, cudaStream_t s) {
  const int N = GATED ? a.I : a.H;
  const int per_cta = kDecWarps * (GATED ? 2 : 4);
  const dim3 grid((N + per_cta - 1) / per_cta, a.E);
  decode_kernel<GATED, MAXT><<<grid, kDecWarps * 32, 0, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace

void launch_decode_gate_up(const DecodeArgs& a, cudaStream_t s) {
  if (a.T <= 4)
    launch_decode<true, 4>(a, s);
  else
    launch_decode<true, kDecodeMaxTokens>(a, s);
}

void launch_decode_down(const DecodeArgs& a, cudaStream_t s) {
  if (a.T <= 4)
    launch_decode<false, 4>(a, s);
  else
    launch_decode<false, kDecodeMaxTokens>(a, s);
}

}  // namespace wattmoe::cuda
