// Causal GQA attention forward without the score matrix (dense_ops.h: attention_fwd_flash; maths of ops/attention.h,
// layouts and batching of attention_fwd). Flash-style: one CTA of 4 warps takes 64 query rows of one (sequence,
// head); K and V arrive in tiles of 64 keys through shared memory; each warp owns 16 query rows and keeps, per row, the
// running maximum m and sum l of the online softmax and its fp32 output accumulator O [16, hd] in shared memory.
// Per key tile: S = Q·Kᵀ (WMMA 16×16×16 bf16 → fp32) → the row's new maximum, p = exp(S·scale − m) (masked keys 0),
// l ← l·α + Σp, O ← O·α with α = exp(m_old − m_new) → O += P·V (P rounded to bf16, as the materialised path rounds its
// probabilities) → the next tile. At the end out = O / l, rounded once to bf16. Key tiles past the CTA's last visible
// key are never read (causal: query t sees keys 0 .. pos0 + t). Rows past Tq are computed over zeros and not written.
// Shared memory: Q, K, V tiles 3·64·(hd + 8) bf16, S 64·(64 + 4) fp32, P 64·(64 + 8) bf16, O 64·(hd + 4) fp32 (the
// pads break bank conflicts and keep WMMA's 32-byte alignment): 110 KB at hd 128, 70 KB at hd 64.
// Requires (flash_attention_supported): hd a multiple of 16 up to 128, q_stride and kv_stride multiples of 8 (16-byte
// row loads), 16-byte-aligned q, k, v.
#include <mma.h>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

namespace wmma = nvcuda::wmma;

constexpr int kBr = 64, kBc = 64, kWarps = 4;
constexpr int kPadH = 8, kPadS = 4, kPadP = 8, kPadO = 4;

struct FlashArgs {
  const bf16 *q, *k, *v;
  bf16* out;
  int64_t Tq, Tk, pos0, n_heads, group, hd, q_stride, kv_stride;
  float scale_log2;  // 1/√hd · log2(e): the softmax in base 2
};

size_t flash_smem_bytes(int64_t hd) {
  const size_t ldh = size_t(hd + kPadH);
  return 3 * kBr * ldh * sizeof(bf16) + kBr * (kBc + kPadS) * sizeof(float) + kBr * (kBc + kPadP) * sizeof(bf16) +
         kBr * size_t(hd + kPadO) * sizeof(float);
}

// rows [r0, r0 + 64) of a [n, hd] matrix with row stride ld (elements) into smem rows of ldh; rows ≥ n are zero.
__device__ __forceinline__ void load_tile(const bf16* src, int64_t ld, int64_t r0, int64_t n, int hd, bf16* dst,
                                          int ldh) {
  const int chunks = hd / 8;  // 16 bytes each
  for (int i = threadIdx.x; i < kBr * chunks; i += kWarps * 32) {
    const int r = i / chunks, c = i % chunks;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r0 + r < n) val = *reinterpret_cast<const uint4*>(src + (r0 + r) * ld + c * 8);
    *reinterpret_cast<uint4*>(dst + r * ldh + c * 8) = val;
  }
}

template <int HD>
__global__ void __launch_bounds__(kWarps * 32) flash_fwd_kernel(FlashArgs a) {
  constexpr int ldh = HD + kPadH, lds = kBc + kPadS, ldp = kBc + kPadP, ldo = HD + kPadO;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* sQ = reinterpret_cast<bf16*>(smem);
  bf16* sK = sQ + kBr * ldh;
  bf16* sV = sK + kBc * ldh;
  float* sS = reinterpret_cast<float*>(sV + kBc * ldh);
  bf16* sP = reinterpret_cast<bf16*>(sS + kBr * lds);
  float* sO = reinterpret_cast<float*>(sP + kBr * ldp);

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t q0 = int64_t(blockIdx.x) * kBr, h = blockIdx.y, b = blockIdx.z, kv = h / a.group;
  const bf16* qb = a.q + b * a.Tq * a.q_stride + h * HD;
  const bf16* kb = a.k + b * a.Tk * a.kv_stride + kv * HD;
  const bf16* vb = a.v + b * a.Tk * a.kv_stride + kv * HD;

  load_tile(qb, a.q_stride, q0, a.Tq, HD, sQ, ldh);
  for (int i = threadIdx.x; i < kBr * ldo; i += kWarps * 32) sO[i] = 0.f;

  // Lane pair (2r, 2r + 1) owns row r of the warp's 16: lane parity picks the half of each 64-key tile it scans.
  const int row = warp * 16 + (lane >> 1), half = lane & 1;
  const int64_t t = q0 + row;                  // the query's index in the sequence (≥ Tq: padding)
  const int64_t last_key = a.pos0 + t;          // keys 0 .. last_key are visible
  float m = -INFINITY, l = 0.f;

  const int64_t kend = std::min<int64_t>(a.Tk, a.pos0 + std::min<int64_t>(q0 + kBr, a.Tq));  // keys any row sees
  for (int64_t j0 = 0; j0 < kend; j0 += kBc) {
    __syncthreads();  // the previous tile's K, V (and, first time, nothing) are no longer read
    load_tile(kb, a.kv_stride, j0, a.Tk, HD, sK, ldh);
    load_tile(vb, a.kv_stride, j0, a.Tk, HD, sV, ldh);
    __syncthreads();

    // S [16 rows of this warp, 64 keys] = Q·Kᵀ
    for (int n = 0; n < kBc / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, sQ + warp * 16 * ldh + kk * 16, ldh);
        wmma::load_matrix_sync(fb, sK + n * 16 * ldh + kk * 16, ldh);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(sS + warp * 16 * lds + n * 16, acc, lds, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax on this lane's 32 keys of its row.
    float* srow = sS + row * lds + half * 32;
    bf16* prow = sP + row * ldp + half * 32;
    const int64_t jh = j0 + half * 32;
    float mx = -INFINITY;
    for (int c = 0; c < 32; ++c)
      if (jh + c <= last_key && jh + c < a.Tk) mx = fmaxf(mx, srow[c] * a.scale_log2);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m, mx);
    const float alpha = m_new == -INFINITY ? 1.f : exp2f(m - m_new);  // m = −∞ before the first visible key
    float sum = 0.f;
    for (int c = 0; c < 32; ++c) {
      const bool vis = jh + c <= last_key && jh + c < a.Tk;
      const bf16 p = __float2bfloat16_rn(vis ? exp2f(srow[c] * a.scale_log2 - m_new) : 0.f);
      prow[c] = p;
      sum += __bfloat162float(p);  // l sums what P·V multiplies
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum, m = m_new;
    float* orow = sO + row * ldo + half * (HD / 2);
    for (int c = 0; c < HD / 2; ++c) orow[c] *= alpha;
    __syncwarp();

    // O [16, HD] += P [16, 64] · V [64, HD]
    for (int n = 0; n < HD / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, sO + warp * 16 * ldo + n * 16, ldo, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, sP + warp * 16 * ldp + kk * 16, ldp);
        wmma::load_matrix_sync(fb, sV + kk * 16 * ldh + n * 16, ldh);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(sO + warp * 16 * ldo + n * 16, acc, ldo, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (t < a.Tq) {
    const float inv = 1.f / l;  // l ≥ 1: the row's maximum key contributes exp2(0)
    const float* orow = sO + row * ldo + half * (HD / 2);
    bf16* dst = a.out + (b * a.Tq + t) * (a.n_heads * HD) + h * HD + half * (HD / 2);
    for (int c = 0; c < HD / 2; ++c) dst[c] = __float2bfloat16_rn(orow[c] * inv);
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
