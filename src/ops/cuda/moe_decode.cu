// Decode path of the MoE layer (T <= kDecodeMaxTokens): GEMV-like, bound by expert-weight bandwidth.
//  gate_up: h_dec[p, i] = bf16(silu(x[t]·gate[e,i]) · (x[t]·up[e,i])) for every pair p = t*S+s routed to e.
//  down:    y_dec[p, n] = bf16(w_p · Σ_i h_dec[p,i]·down[e,n,i]).     h_dec [T*S, I], y_dec [T*S, H]; overwrites the
//  rows of routed pairs only (unused slots, id -1, are no expert's pairs).
// Grid = (output-row slices, E). A CTA of 8 warps returns at once when counts[e] == 0; otherwise it gathers the
// pairs of expert e (in pair order, so results do not depend on scheduling) and each warp streams 4 weight rows
// (gated: gate and up rows of 2 outputs; down: 4 outputs) once, 16 bytes a lane, one chunk ahead, with fp32 FMAs
// against every routed token's activations (read through L1). One instantiation per token bound (4, 8): the
// accumulators [4 rows][bound] live in registers. Requires H % 8 == 0 and I % 8 == 0.
// Weight-only quantised experts (DecodeArgs::wq, one instantiation per format): the same kernel over 1-byte codes, so
// a 16-byte load carries 16 weights; they are widened to fp32 in registers (exactly: e4m3 and int8 values are fp32
// values), the dot products run in fp32 as for bf16, and the row's scale multiplies each finished sum once (before
// silu in gate_up, before the routing weight in down). Requires H % 16 == 0 and I % 16 == 0.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {
namespace {

constexpr int kDecWarps = 8;

// 4 e4m3 codes (byte k of w is element k) -> 4 floats, exactly: the hardware's paired conversion (cvt e4m3x2 ->
// f16x2; every e4m3 value, subnormals included, is an f16 value) and two f16 -> f32 widenings per pair, 1.5
// instructions a weight. The NaN codes (0x7F/0xFF) never occur: the quantiser (ops/quant.h) does not write them.
__device__ __forceinline__ void e4m3x4_to_f32(uint32_t w, float* f) {
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(w >> (16 * k)), __NV_E4M3);
    const float2 v = __half22float2(__half2(h));
    f[2 * k] = v.x, f[2 * k + 1] = v.y;
  }
}

// 4 int8 codes -> 4 floats, exactly: each byte, biased to b + 128 (xor 0x80), becomes the low mantissa byte of
// 2^23 (one byte permute), and one subtraction of 2^23 + 128 leaves b. Two operations per weight (an I2F per weight
// would run at a quarter of the FMA rate, about the rate the weights arrive at).
__device__ __forceinline__ void s8x4_to_f32(uint32_t w, float* f) {
  const uint32_t u = w ^ 0x80808080u;
#pragma unroll
  for (int k = 0; k < 4; ++k) f[k] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540u + k)) - 8388736.f;
}

// Eight weights of a 16-byte chunk of a weight row as floats: the whole chunk for bf16 (Q = 0, h = 0), half h of its
// 16 codes for e4m3 (Q = 1) and int8 (Q = 2) — a chunk is used in halves of 8 so the converted weights take the
// registers of the bf16 kernel's (no spills; 8 warps per CTA keep their loads in flight).
template <int Q>
__device__ __forceinline__ void unpack_weights8(const uint4& v, int h, float* f) {
  if constexpr (Q == 0) {
    unpack8(v, f);
  } else {
    const uint32_t w0 = h == 0 ? v.x : v.z, w1 = h == 0 ? v.y : v.w;
    if constexpr (Q == 1) {
      e4m3x4_to_f32(w0, f), e4m3x4_to_f32(w1, f + 4);
    } else {
      s8x4_to_f32(w0, f), s8x4_to_f32(w1, f + 4);
    }
  }
}

template <bool GATED, int MAXT, int Q>
__global__ void __launch_bounds__(kDecWarps * 32) decode_kernel(DecodeArgs a) {
  constexpr int EPC = Q == 0 ? 8 : 16;  // weights per 16-byte chunk
  constexpr int WB = Q == 0 ? 2 : 1;    // bytes per weight
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

  const char* wrow[4];
  bool wok[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int out = GATED ? o0 + (r >> 1) : o0 + r;
    const char* mat = static_cast<const char*>(GATED ? ((r & 1) ? a.up : a.gate) : a.down);
    wok[r] = out < N;
    wrow[r] = mat + (size_t(e) * N + (out < N ? out : 0)) * K * WB;
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

  const int nch = K / EPC;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 cur[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) cur[r] = (wok[r] && lane < nch) ? ld_stream(wrow[r] + size_t(lane) * 16) : zero;
  for (int c = lane; c < nch; c += 32) {
    uint4 nxt[4];
    const bool more = c + 32 < nch;
#pragma unroll
    for (int r = 0; r < 4; ++r) nxt[r] = (wok[r] && more) ? ld_stream(wrow[r] + size_t(c + 32) * 16) : zero;
#pragma unroll
    for (int h = 0; h < EPC / 8; ++h) {
      float wf[4][8];
#pragma unroll
      for (int r = 0; r < 4; ++r) unpack_weights8<Q>(cur[r], h, wf[r]);
#pragma unroll
      for (int t = 0; t < MAXT; ++t) {
        if (t < n_e) {
          float xf[8];
          unpack8(ld_ro(in[t] + c * EPC + h * 8), xf);
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < 8; ++q) acc[r][t] = fmaf(wf[r][q], xf[q], acc[r][t]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) cur[r] = nxt[r];
  }

  float scale[4] = {1.f, 1.f, 1.f, 1.f};  // each weight row's dequantisation scale (1 for bf16)
  if constexpr (Q != 0) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int out = GATED ? o0 + (r >> 1) : o0 + r;
      const float* s = GATED ? ((r & 1) ? a.up_s : a.gate_s) : a.down_s;
      scale[r] = wok[r] ? __ldg(s + size_t(e) * N + out) : 0.f;
    }
  }
#pragma unroll
  for (int t = 0; t < MAXT; ++t) {
    if (t >= n_e) break;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      acc[r][t] = warp_sum(acc[r][t]);
      if constexpr (Q != 0) acc[r][t] *= scale[r];
    }
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

template <bool GATED, int MAXT, int Q>
void launch_decode(const DecodeArgs& a, cudaStream_t s) {
  const int N = GATED ? a.I : a.H;
  const int per_cta = kDecWarps * (GATED ? 2 : 4);
  const dim3 grid((N + per_cta - 1) / per_cta, a.E);
  decode_kernel<GATED, MAXT, Q><<<grid, kDecWarps * 32, 0, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

template <bool GATED, int Q>
void launch_decode_q(const DecodeArgs& a, cudaStream_t s) {
  if (a.T <= 4)
    launch_decode<GATED, 4, Q>(a, s);
  else
    launch_decode<GATED, kDecodeMaxTokens, Q>(a, s);
}

template <bool GATED>
void launch_decode_any(const DecodeArgs& a, cudaStream_t s) {
  // MoeLayerCuda checks the shapes (multiples of 16) and the scales before it asks for a quantised format.
  if (a.wq == 1)
    launch_decode_q<GATED, 1>(a, s);
  else if (a.wq == 2)
    launch_decode_q<GATED, 2>(a, s);
  else
    launch_decode_q<GATED, 0>(a, s);
}

}  // namespace

void launch_decode_gate_up(const DecodeArgs& a, cudaStream_t s) { launch_decode_any<true>(a, s); }

void launch_decode_down(const DecodeArgs& a, cudaStream_t s) { launch_decode_any<false>(a, s); }

}  // namespace wattmoe::cuda
