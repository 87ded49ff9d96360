// Grouped expert GEMMs of the MoE layer over block-aligned permuted rows, 64-row M-tiles (prefill path for moderate
// token counts; moe_gemm_sm90.cu takes the large ones).
//  gate_up: A = x rows gathered through sorted_token [max_rows] (x [T,H]), B = gate[e], up[e] [I,H] (HF [out,in])
//           -> h [max_rows, I] = bf16(silu(A·gateᵀ) ⊙ (A·upᵀ)); SwiGLU fused in the epilogue. Overwrites h.
//  down:    A = h [max_rows, I], B = down[e] [H,I] -> y [max_rows, H] = bf16(sorted_w[r] · A·downᵀ), real rows only.
// bf16 mma.sync m16n8k16 with fp32 accumulators; 256 threads = 2×4 warps; BK = 64 through a cp.async pipeline
// (4 stages for BM=64; the template also takes BM=128 with 3) in XOR-swizzled shared memory read with ldmatrix.
// One CTA computes a BM × 64
// (gate_up: 64 gate + 64 up rows of B) or BM × 128 (down) tile. Grid = max_tiles × N-tiles in groups of 16 M-tiles,
// so a wave shares A panels and weight panels through L2; tiles past the routed rows (tile_expert = -1) exit.
// Requires H % 8 == 0 and I % 8 == 0 (16-byte rows); other tails (N, K, M) are zero-filled and masked.
#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {
namespace {

template <bool GATED, int BM>
struct GemmCfg {
  static constexpr int kBK = 64, kThreads = 256, kStages = BM == 128 ? 3 : 4;
  static constexpr int kWM = BM / 2, kMI = kWM / 16;  // warp tile rows, m16 tiles per warp
  static constexpr int kBRows = 128;                  // B tile rows (gated: 64 gate then 64 up)
  static constexpr int kBNOut = GATED ? 64 : 128;     // output columns per CTA
  static constexpr int kABytes = BM * kBK * 2, kBBytes = kBRows * kBK * 2, kStageBytes = kABytes + kBBytes;
  static constexpr int kSmem = kStages * kStageBytes;
  static constexpr int kGroupM = 16;
};

template <bool GATED, int BM>
__global__ void __launch_bounds__(256, 2) grouped_gemm_kernel(GroupedGemmArgs a) {
  using C = GemmCfg<GATED, BM>;
  const int N = GATED ? a.I : a.H, K = GATED ? a.H : a.I;
  const int n_tiles = (N + C::kBNOut - 1) / C::kBNOut;

  const int per_group = C::kGroupM * n_tiles;
  const int pid = blockIdx.x, g = pid / per_group, first_m = g * C::kGroupM;
  const int gsize = min(a.max_tiles - first_m, C::kGroupM);
  const int m_tile = first_m + (pid % per_group) % gsize, n_tile = (pid % per_group) / gsize;
  const int e = a.tile_expert[m_tile];
  if (e < 0) return;
  const int m0 = m_tile * BM, n0 = n_tile * C::kBNOut;

  extern __shared__ __align__(128) uint8_t smem[];
  const uint32_t sbase = uint32_t(__cvta_generic_to_shared(smem));
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wm = warp >> 2, wn = warp & 3;
  const int chunk = tid & 7, row0 = tid >> 3;  // this thread copies chunk `chunk` of rows row0 + 32*i

  constexpr int kAIters = BM * 8 / 256, kBIters = C::kBRows * 8 / 256;
  const auto a_rows = a_tile_rows<GATED, kAIters>(a, m0, row0, K);
  const auto b_rows = b_tile_rows<GATED, 64, kBIters>(a, e, n0, row0, N, K);
  auto load_stage = [&](int stage, int kt) {
    const uint32_t sA = sbase + stage * C::kStageBytes;
    cp_async_tile(sA, a_rows, row0, chunk, kt * C::kBK + chunk * 8, K);
    cp_async_tile(sA + C::kABytes, b_rows, row0, chunk, kt * C::kBK + chunk * 8, K);
  };

  float acc[C::kMI][4][4];
#pragma unroll
  for (int mi = 0; mi < C::kMI; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.f;

  const int KT = (K + C::kBK - 1) / C::kBK;
#pragma unroll
  for (int s = 0; s < C::kStages - 1; ++s) {
    if (s < KT) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<C::kStages - 2>();
    __syncthreads();  // stage kt landed for everyone; stage kt-1 is free to refill
    const int nk = kt + C::kStages - 1;
    if (nk < KT) load_stage(nk % C::kStages, nk);
    cp_async_commit();

    const uint32_t sA = sbase + (kt % C::kStages) * C::kStageBytes, sB = sA + C::kABytes;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t af[C::kMI][4];
#pragma unroll
      for (int mi = 0; mi < C::kMI; ++mi) {
        const int r = wm * C::kWM + mi * 16 + (lane & 15);
        ldmatrix_x4(sA + swz(r, kk * 2 + (lane >> 4)), af[mi][0], af[mi][1], af[mi][2], af[mi][3]);
      }
      uint32_t bfr[4][2];
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int base = GATED ? j * 64 + wn * 16 : wn * 32 + j * 16;
        const int r = base + ((lane >> 4) << 3) + (lane & 7);
        ldmatrix_x4(sB + swz(r, kk * 2 + ((lane >> 3) & 1)), bfr[2 * j][0], bfr[2 * j][1], bfr[2 * j + 1][0],
                    bfr[2 * j + 1][1]);
      }
#pragma unroll
      for (int mi = 0; mi < C::kMI; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_bf16_16816(acc[mi][ni], af[mi], bfr[ni][0], bfr[ni][1]);
    }
  }
  cp_async_wait<0>();

  // Epilogue. Accumulator (mi, ni, q): row = mi*16 + lane/4 + 8*(q/2), col = ni*8 + 2*(lane%4) + q%2.
#pragma unroll
  for (int mi = 0; mi < C::kMI; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = m0 + wm * C::kWM + mi * 16 + (lane >> 2) + hh * 8;
      if constexpr (GATED) {
#pragma unroll
        for (int ni = 0; ni < 2; ++ni) {
          const int col = n0 + wn * 16 + ni * 8 + (lane & 3) * 2;
          if (col < N) {
            const float h0 = silu(acc[mi][ni][2 * hh]) * acc[mi][ni + 2][2 * hh];
            const float h1 = silu(acc[mi][ni][2 * hh + 1]) * acc[mi][ni + 2][2 * hh + 1];
            *reinterpret_cast<uint32_t*>(a.h + size_t(r) * N + col) = pack_bf16x2(h0, h1);
          }
        }
      } else {
        if (a.sorted_token[r] < 0) continue;
        const float w = a.sorted_w[r];
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          const int col = n0 + wn * 32 + ni * 8 + (lane & 3) * 2;
          if (col < N)
            *reinterpret_cast<uint32_t*>(a.y + size_t(r) * N + col) =
                pack_bf16x2(w * acc[mi][ni][2 * hh], w * acc[mi][ni][2 * hh + 1]);
        }
      }
    }
}

template <bool GATED, int BM>
void launch_gemm(const GroupedGemmArgs& a, cudaStream_t s) {
  using C = GemmCfg<GATED, BM>;
  const int N = GATED ? a.I : a.H;
  const int n_tiles = (N + C::kBNOut - 1) / C::kBNOut;
  const long long blocks = (long long)a.max_tiles * n_tiles;
  if (blocks == 0) return;
  grouped_gemm_kernel<GATED, BM><<<unsigned(blocks), C::kThreads, C::kSmem, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

template <bool GATED, int BM>
void allow_smem() {
  WATTMOE_CUDA_CALL(cudaFuncSetAttribute(grouped_gemm_kernel<GATED, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         GemmCfg<GATED, BM>::kSmem));
}

}  // namespace

void prepare_gemm_kernels() {
  allow_smem<true, 64>();
  allow_smem<false, 64>();
}

void launch_gate_up(const GroupedGemmArgs& a, cudaStream_t s) { launch_gemm<true, 64>(a, s); }
void launch_down(const GroupedGemmArgs& a, cudaStream_t s) { launch_gemm<false, 64>(a, s); }

}  // namespace wattmoe::cuda
