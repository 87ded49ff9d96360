// gemm_grouped (dense_ops.h): many small products of one shape family in one launch. The work it exists for is the
// routed experts' FFN on rows grouped by expert (gpu/ffn_cuda.cpp): a few dozen rows per expert, where a cuBLAS call
// per expert and per matrix is bound by launches, not by the GPU.
// bf16, more than one group and small groups: one launch of the kernel below per kMaxGroups groups; each CTA computes
// a 64 × 64 tile of one group's C with WMMA tensor-core fragments (bf16 in, fp32 accumulate), operands staged through
// shared memory through registers, the next K tile loaded while the current one is multiplied (16-byte loads where
// the operands are 8-element aligned, else bounds-checked element loads; any leading dimension, any transpose, any
// tail: out-of-range elements read as zero); the epilogue forms alpha·AB + beta·C in fp32 and rounds once (beta = 0 never reads C), as gemm()
// does. Otherwise (fp32, whose products are pedantic cuBLAS ones the CPU comparisons rely on; one group; groups large
// enough that a launch each is cheap beside cuBLAS' speed) it calls gemm() once per group.
#include <mma.h>

#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

constexpr int kBM = 64, kBN = 64, kBK = 32, kThreads = 128;
constexpr int kMaxGroups = 64;  // per launch: the parameter block stays under the 4 KB kernel-argument limit
// Mean FLOPs per group above which one cuBLAS call per group is taken instead of this kernel. An ESTIMATE, not a
// measured crossover: with ~4 µs of host time per launch, cuBLAS near 300 bf16 TFLOP/s and this simple kernel assumed
// near 40, launches would win past ~180 MFLOP a group. The TTT shapes measured (docs/results.md) are far below it.
constexpr double kLoopFlopsPerGroup = 128e6;

struct Params {
  int count, N, lda, ldb, ldc, tiles_n;
  bool vec_a, vec_b;  // every group's A (B) pointer and lda (ldb) are multiples of 8 elements: 16-byte loads
  float alpha, beta;
  const bf16* A[kMaxGroups];
  const bf16* B[kMaxGroups];
  bf16* C[kMaxGroups];
  int M[kMaxGroups], K[kMaxGroups];
  int tile0[kMaxGroups + 1];  // first CTA of each group; tile0[count] = the grid
};

// One thread's share of a ROWS × COLS tile at (r0, c0) of a logical [R, C] operand, held in registers between the
// global loads (load) and the shared-memory stores (store), so that the next tile's loads are in flight while the
// current one is multiplied. Element (i, j) is P[j·ld + i] when TRANS (stored transposed), else P[i·ld + j]; zero
// outside [R, C]. The tile is cut into runs of 8 elements along the stored rows (contiguous in memory), consecutive
// threads on consecutive runs, so the loads coalesce either way; a run inside [R, C] is one 16-byte load when `vec`
// (the operand's pointers and ld are multiples of 8 elements), else 8 bounds-checked element loads.
template <int ROWS, int COLS, bool TRANS>
struct TileLoad {
  static constexpr int kRunsPerRow = (TRANS ? ROWS : COLS) / 8;  // runs per stored row
  static constexpr int kPerThread = ROWS * COLS / 8 / kThreads;
  static_assert(kPerThread * 8 * kThreads == ROWS * COLS, "the tile must split into whole runs per thread");
  uint4 run[kPerThread];

  // Run i of this thread: the stored row (sr) and the first element along it (e0), in tile coordinates.
  __device__ __forceinline__ static void place(int tid, int i, int& sr, int& e0) {
    const int v = tid + i * kThreads;
    sr = v / kRunsPerRow, e0 = (v % kRunsPerRow) * 8;
  }
  __device__ __forceinline__ void load(const bf16* __restrict__ P, int ld, int r0, int c0, int R, int C, bool vec,
                                       int tid) {
    // Stored-row coordinates: row index sr0 + sr in [0, SR), element index e00 + e in [0, SE).
    const int sr0 = TRANS ? c0 : r0, e00 = TRANS ? r0 : c0, SR = TRANS ? C : R, SE = TRANS ? R : C;
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      int sr, e0;
      place(tid, i, sr, e0);
      const int gr = sr0 + sr, ge = e00 + e0;
      const bf16* src = P + size_t(gr) * ld + ge;
      if (vec && gr < SR && ge + 8 <= SE) {
        run[i] = *reinterpret_cast<const uint4*>(src);
      } else {
        __align__(16) bf16 e[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) e[k] = gr < SR && ge + k < SE ? src[k] : __float2bfloat16_rn(0.f);
        run[i] = *reinterpret_cast<const uint4*>(e);
      }
    }
  }
  template <int LDS>
  __device__ __forceinline__ void store(bf16 (*s)[LDS], int tid) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      int sr, e0;
      place(tid, i, sr, e0);
      if (!TRANS) {  // a run is 8 neighbours of one tile row: one 16-byte store (rows are 16-byte multiples)
        *reinterpret_cast<uint4*>(&s[sr][e0]) = run[i];
      } else {  // a run is 8 neighbours of one tile column
        const bf16* e = reinterpret_cast<const bf16*>(&run[i]);
#pragma unroll
        for (int k = 0; k < 8; ++k) s[e0 + k][sr] = e[k];
      }
    }
  }
};

template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads) gemm_grouped_kernel(const __grid_constant__ Params p) {
  using namespace nvcuda;
  const int b = int(blockIdx.x);
  int g = 0;
  while (g + 1 < p.count && p.tile0[g + 1] <= b) ++g;
  const int t = b - p.tile0[g], m0 = (t / p.tiles_n) * kBM, n0 = (t % p.tiles_n) * kBN;
  const int M = p.M[g], K = p.K[g], N = p.N;
  const bf16* __restrict__ A = p.A[g];
  const bf16* __restrict__ B = p.B[g];
  bf16* __restrict__ C = p.C[g];

  // Row pads keep every fragment pointer 32-byte aligned and spread the banks.
  __shared__ __align__(32) bf16 sA[kBM][kBK + 8];
  __shared__ __align__(32) bf16 sB[kBK][kBN + 8];
  __shared__ __align__(32) float sC[kBM][kBN + 4];

  const int tid = int(threadIdx.x), warp = tid >> 5, wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  TileLoad<kBM, kBK, TA> la;  // op(A) [M, K]
  TileLoad<kBK, kBN, TB> lb;  // op(B) [K, N]
  if (K > 0) la.load(A, p.lda, m0, 0, M, K, p.vec_a, tid), lb.load(B, p.ldb, 0, n0, K, N, p.vec_b, tid);
  for (int k0 = 0; k0 < K; k0 += kBK) {
    la.store(sA, tid), lb.store(sB, tid);
    __syncthreads();
    if (k0 + kBK < K)  // the next tiles' loads, in flight during this tile's products
      la.load(A, p.lda, m0, k0 + kBK, M, K, p.vec_a, tid), lb.load(B, p.ldb, k0 + kBK, n0, K, N, p.vec_b, tid);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sA[wm + 16 * i][kk], kBK + 8);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sB[kk][wn + 16 * j], kBN + 8);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are refilled next step
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&sC[wm + 16 * i][wn + 16 * j], acc[i][j], kBN + 4, wmma::mem_row_major);
  __syncthreads();
  for (int idx = tid; idx < kBM * kBN; idx += kThreads) {
    const int r = idx / kBN, c = idx % kBN, m = m0 + r, n = n0 + c;
    if (m >= M || n >= N) continue;
    bf16* out = C + size_t(m) * p.ldc + n;
    const float v = p.alpha * sC[r][c];
    *out = __float2bfloat16_rn(p.beta == 0.f ? v : v + p.beta * __bfloat162float(*out));
  }
}

void launch(const Params& p, bool ta, bool tb, cudaStream_t s) {
  const unsigned grid = unsigned(p.tile0[p.count]);
  if (grid == 0) return;
  if (ta && tb) gemm_grouped_kernel<true, true><<<grid, kThreads, 0, s>>>(p);
  else if (ta) gemm_grouped_kernel<true, false><<<grid, kThreads, 0, s>>>(p);
  else if (tb) gemm_grouped_kernel<false, true><<<grid, kThreads, 0, s>>>(p);
  else gemm_grouped_kernel<false, false><<<grid, kThreads, 0, s>>>(p);
  WATTMOE_CUDA_LAUNCHED();
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

}  // namespace

template <class T>
void gemm_grouped(Context& ctx, bool trans_a, bool trans_b, const std::vector<GemmGroup<T>>& groups, int64_t N,
                  float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc) {
  double flops = 0;
  int64_t used = 0;
  for (const GemmGroup<T>& g : groups) {
    WATTMOE_DENSE_REQUIRE(g.M >= 0 && g.K >= 0, "gemm_grouped: negative group size");
    if (g.M > 0) ++used, flops += 2.0 * double(g.M) * double(N) * double(g.K);
  }
  if (N <= 0 || used == 0) return;
  const bool kernel = std::is_same_v<T, bf16> && used > 1 && flops / double(used) <= kLoopFlopsPerGroup;
  if (!kernel) {
    for (const GemmGroup<T>& g : groups)
      gemm<T>(ctx, trans_a, trans_b, g.M, N, g.K, alpha, g.A, lda, g.B, ldb, beta, g.C, ldc);
    return;
  }
  if constexpr (std::is_same_v<T, bf16>) {
    WATTMOE_DENSE_REQUIRE(fits_int(N) && fits_int(lda) && fits_int(ldb) && fits_int(ldc),
                          "gemm_grouped: dimension exceeds INT_MAX");
    Params p{};
    p.N = int(N), p.lda = int(lda), p.ldb = int(ldb), p.ldc = int(ldc), p.tiles_n = int((N + kBN - 1) / kBN);
    p.alpha = alpha, p.beta = beta;
    const auto aligned = [](const void* q, int64_t ld) { return ld % 8 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0; };
    auto flush = [&] {
      if (p.count) launch(p, trans_a, trans_b, ctx.stream());
      p.count = 0, p.tile0[0] = 0, p.vec_a = p.vec_b = true;
    };
    p.vec_a = p.vec_b = true;
    p.tile0[0] = 0;
    for (const GemmGroup<T>& g : groups) {
      if (g.M == 0) continue;
      WATTMOE_DENSE_REQUIRE(fits_int(g.M) && fits_int(g.K), "gemm_grouped: dimension exceeds INT_MAX");
      const int64_t tiles = (g.M + kBM - 1) / kBM * p.tiles_n;
      if (p.count == kMaxGroups || p.tile0[p.count] + tiles > INT_MAX) flush();
      p.A[p.count] = g.A, p.B[p.count] = g.B, p.C[p.count] = g.C;
      p.vec_a = p.vec_a && aligned(g.A, lda), p.vec_b = p.vec_b && aligned(g.B, ldb);
      p.M[p.count] = int(g.M), p.K[p.count] = int(g.K);
      p.tile0[p.count + 1] = int(p.tile0[p.count] + tiles);
      ++p.count;
    }
    flush();
  }
}

template void gemm_grouped<float>(Context&, bool, bool, const std::vector<GemmGroup<float>>&, int64_t, float,
                                  int64_t, int64_t, float, int64_t);
template void gemm_grouped<bf16>(Context&, bool, bool, const std::vector<GemmGroup<bf16>>&, int64_t, float, int64_t,
                                 int64_t, float, int64_t);

}  // namespace wattmoe::cuda
