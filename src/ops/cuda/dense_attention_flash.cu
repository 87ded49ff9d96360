// Causal GQA attention forward without the score matrix (dense_ops.h: attention_fwd_flash; maths of ops/attention.h,
// layouts and batching of attention_fwd). Flash-style, in registers: one CTA of 4 warps takes 64 query rows of one
// (sequence, head), each warp 16 of them; K and V arrive in tiles of 64 keys through shared memory (cp.async). Per
// key tile a warp computes S = Q·Kᵀ [16, 64] with bf16 mma.sync m16n8k16 (fp32 accumulate; Q's fragments stay in
// registers, K's come by ldmatrix), then the online softmax on its accumulators (each row lives in the 4 lanes of a
// quad): the row's new maximum m, p = exp2(S·scale·log2e − m) rounded to bf16 (masked keys 0), l ← l·α + Σp and
// O ← O·α with α = exp2(m_old − m_new), then O += P·V with P's bf16 accumulators reused as the A operand and V read by
// ldmatrix.trans. At the end out = O / l, rounded once to bf16. Key tiles past the CTA's last visible key are never
// read (causal: query t sees keys 0 .. pos0 + t), and a warp skips a tile none of its rows sees and every tile when
// all its rows are past Tq; other rows past Tq are computed over zeros and not written.
// Shared memory: Q, K, V tiles of 64 rows × (hd + 8) bf16 (the pad puts the 8 rows of each ldmatrix in distinct
// banks): 27 KB at hd 64, 51 KB at hd 128. Registers: O [hd/8 × 4], S [8 × 4], Q's fragments [hd/16 × 4] per thread.
// Requires (flash_attention_supported): hd a multiple of 16 up to 128, q_stride and kv_stride multiples of 8 (16-byte
// row loads), 16-byte-aligned q, k, v.
#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"
#include "ops/cuda/tensor_core.cuh"

namespace wattmoe::cuda {

namespace {

constexpr int kBr = 64, kBc = 64, kWarps = 4, kPad = 8;

struct FlashArgs {
  const bf16 *q, *k, *v;
  bf16* out;
  int64_t Tq, Tk, pos0, n_heads, group, hd, q_stride, kv_stride;
  float scale_log2;  // 1/√hd · log2(e): the softmax in base 2
};

size_t flash_smem_bytes(int64_t hd) { return 3 * kBr * size_t(hd + kPad) * sizeof(bf16); }

// cp.async rows [r0, r0 + 64) of a [n, HD] matrix with row stride ld (elements) into smem rows of HD + kPad; rows ≥ n
// are zero-filled.
template <int HD>
__device__ __forceinline__ void load_tile(const bf16* src, int64_t ld, int64_t r0, int64_t n, bf16* dst) {
  constexpr int chunks = HD / 8;  // 16 bytes each
  for (int i = threadIdx.x; i < kBr * chunks; i += kWarps * 32) {
    const int r = i / chunks, c = i % chunks;
    const bool in = r0 + r < n;
    cp_async16(uint32_t(__cvta_generic_to_shared(dst + r * (HD + kPad) + c * 8)),
               in ? src + (r0 + r) * ld + c * 8 : src, in ? 16 : 0);
  }
}

template <int HD>
__global__ void __launch_bounds__(kWarps * 32) flash_fwd_kernel(FlashArgs a) {
  constexpr int ld = HD + kPad, NT = HD / 8;  // smem row stride; n-tiles of 8 along hd
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kBr * ld;
  bf16* sV = sK + kBc * ld;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t q0 = int64_t(blockIdx.x) * kBr, h = blockIdx.y, b = blockIdx.z, kv = h / a.group;
  const bf16* qb = a.q + b * a.Tq * a.q_stride + h * HD;
  const bf16* kb = a.k + b * a.Tk * a.kv_stride + kv * HD;
  const bf16* vb = a.v + b * a.Tk * a.kv_stride + kv * HD;

  load_tile<HD>(qb, a.q_stride, q0, a.Tq, sQ);
  cp_async_commit();

  // This thread's two rows (accumulator elements 0,1 and 2,3) and the last key each sees.
  const int64_t t0 = q0 + warp * 16 + gid, t1 = t0 + 8;
  const int64_t last0 = a.pos0 + t0, last1 = a.pos0 + t1;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  uint32_t qf[HD / 16][4];

  const int64_t kend = std::min<int64_t>(a.Tk, a.pos0 + std::min<int64_t>(q0 + kBr, a.Tq));  // keys any row sees
  const int64_t warp_last = a.pos0 + q0 + warp * 16 + 15;  // the last key any of this warp's rows sees
  for (int64_t j0 = 0; j0 < kend; j0 += kBc) {
    __syncthreads();  // the previous tile's K and V are no longer read
    load_tile<HD>(kb, a.kv_stride, j0, a.Tk, sK);
    load_tile<HD>(vb, a.kv_stride, j0, a.Tk, sV);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (j0 == 0) {
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk)
        ldmatrix_x4(uint32_t(__cvta_generic_to_shared(sQ + (warp * 16 + (lane & 15)) * ld + kk * 16 + (lane >> 4) * 8)),
                    qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3]);
    }
    if (j0 > warp_last || q0 + warp * 16 >= a.Tq) continue;  // no row of this warp sees the tile, or none is real

    // S [16, 64] = Q·Kᵀ: n-tiles of 8 keys, two per ldmatrix.x4 (keys (lane & 7) + 8·(lane >> 4), hd half (lane >> 3) & 1).
    float s[kBc / 8][4];
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk)
#pragma unroll
      for (int np = 0; np < kBc / 16; ++np) {
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(uint32_t(__cvta_generic_to_shared(sK + (np * 16 + (lane & 7) + 8 * (lane >> 4)) * ld + kk * 16 +
                                                      8 * ((lane >> 3) & 1))),
                    b0, b1, b2, b3);
        mma_bf16_16816(s[2 * np], qf[kk], b0, b1);
        mma_bf16_16816(s[2 * np + 1], qf[kk], b2, b3);
      }

    // Online softmax: element c of n-tile n is key j0 + 8n + 2·tig + (c & 1) of row t0 (c < 2) or t1.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t key = j0 + 8 * n + 2 * tig + (c & 1);
        const bool vis = key < a.Tk && key <= (c < 2 ? last0 : last1);
        s[n][c] = vis ? s[n][c] * a.scale_log2 : -INFINITY;
        if (c < 2) mx0 = fmaxf(mx0, s[n][c]);
        else mx1 = fmaxf(mx1, s[n][c]);
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
    // m = −∞ before a row's first visible key: nothing to rescale, and every p of the tile is 0.
    const float al0 = n0 == -INFINITY ? 1.f : exp2f(m0 - n0), al1 = n1 == -INFINITY ? 1.f : exp2f(m1 - n1);
    float sum0 = 0.f, sum1 = 0.f;
    uint32_t pf[kBc / 16][4];  // P as the A operand of P·V: 16 keys per k-step, bf16 pairs
#pragma unroll
    for (int n = 0; n < kBc / 8; ++n) {
      float p[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const float mn = c < 2 ? n0 : n1;
        p[c] = round_bf16(s[n][c] == -INFINITY ? 0.f : exp2f(s[n][c] - mn));  // l sums what P·V multiplies
      }
      sum0 += p[0] + p[1], sum1 += p[2] + p[3];
      pf[n / 2][(n & 1) * 2] = pack_bf16x2(p[0], p[1]);
      pf[n / 2][(n & 1) * 2 + 1] = pack_bf16x2(p[2], p[3]);
    }
    l0 = l0 * al0 + sum0, l1 = l1 * al1 + sum1, m0 = n0, m1 = n1;  // l: this thread's share of the row's sum
#pragma unroll
    for (int n = 0; n < NT; ++n) o[n][0] *= al0, o[n][1] *= al0, o[n][2] *= al1, o[n][3] *= al1;

    // O [16, HD] += P [16, 64] · V [64, HD]: V by ldmatrix.trans, keys (lane & 7) + 8·((lane >> 3) & 1), hd half
    // lane >> 4; two n-tiles of 8 along hd per load.
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk)
#pragma unroll
      for (int np = 0; np < HD / 16; ++np) {
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(uint32_t(__cvta_generic_to_shared(sV + (kk * 16 + (lane & 7) + 8 * ((lane >> 3) & 1)) * ld +
                                                            np * 16 + 8 * (lane >> 4))),
                          b0, b1, b2, b3);
        mma_bf16_16816(o[2 * np], pf[kk], b0, b1);
        mma_bf16_16816(o[2 * np + 1], pf[kk], b2, b3);
      }
  }

  // The row sums are spread over the quad's 4 lanes.
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;  // l ≥ 1: the row's maximum key contributes exp2(0)
  bf16* dst0 = a.out + (b * a.Tq + t0) * (a.n_heads * HD) + h * HD + 2 * tig;
  bf16* dst1 = dst0 + 8 * (a.n_heads * HD);
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    if (t0 < a.Tq) *reinterpret_cast<uint32_t*>(dst0 + 8 * n) = pack_bf16x2(o[n][0] * inv0, o[n][1] * inv0);
    if (t1 < a.Tq) *reinterpret_cast<uint32_t*>(dst1 + 8 * n) = pack_bf16x2(o[n][2] * inv1, o[n][3] * inv1);
  }
}

template <int HD>
void launch_flash(const FlashArgs& a, int64_t batch, cudaStream_t st) {
  const size_t smem = flash_smem_bytes(HD);
  static const cudaError_t attr =
      cudaFuncSetAttribute(flash_fwd_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  WATTMOE_CUDA_CALL(attr);
  const dim3 grid(unsigned((a.Tq + kBr - 1) / kBr), unsigned(a.n_heads), unsigned(batch));
  flash_fwd_kernel<HD><<<grid, kWarps * 32, smem, st>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace
bool flash_attention_supported(const ops::AttnShape& s) {
  return s.hd % 16 == 0 && s.hd >= 16 && s.hd <= 128 && s.q_stride % 8 == 0 && s.kv_stride % 8 == 0;
}

void attention_fwd_flash(Context& ctx, const bf16* q, const bf16* k, const bf16* v, bf16* out,
                         const ops::AttnShape& s, int64_t batch) {
  if (batch <= 0) return;
  check_attention_shape(s);
  WATTMOE_DENSE_REQUIRE(flash_attention_supported(s),
                        "attention_fwd_flash: needs hd a multiple of 16 up to 128 and row strides multiples of 8");
  WATTMOE_DENSE_REQUIRE(((reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) |
                          reinterpret_cast<uintptr_t>(v)) & 15) == 0,
                        "attention_fwd_flash: q, k, v must be 16-byte aligned");
  WATTMOE_DENSE_REQUIRE(batch <= 65535 && s.n_heads <= 65535, "attention_fwd_flash: batch or heads beyond the grid");
  const FlashArgs a{q, k, v, out, s.Tq, s.Tk, s.pos0, s.n_heads, s.n_heads / s.n_kv, s.hd, s.q_stride, s.kv_stride,
                    float(1.4426950408889634 / std::sqrt(double(s.hd)))};
  switch (s.hd) {
    case 16: return launch_flash<16>(a, batch, ctx.stream());
    case 32: return launch_flash<32>(a, batch, ctx.stream());
    case 48: return launch_flash<48>(a, batch, ctx.stream());
    case 64: return launch_flash<64>(a, batch, ctx.stream());
    case 80: return launch_flash<80>(a, batch, ctx.stream());
    case 96: return launch_flash<96>(a, batch, ctx.stream());
    case 112: return launch_flash<112>(a, batch, ctx.stream());
    default: return launch_flash<128>(a, batch, ctx.stream());
  }
}

}  // namespace wattmoe::cuda
