// gemm_grouped (dense_ops.h): many small products of one shape family in one launch. The work it exists for is the
// routed experts' FFN on rows grouped by expert (gpu/ffn_cuda.cpp): a few dozen rows per expert, where a cuBLAS call
// per expert and per matrix is bound by launches, not by the GPU.
// bf16, more than one group and small groups: one launch of the kernel below per kMaxGroups groups; each CTA computes
// a 64 × 64 tile of one group's C with WMMA tensor-core fragments (bf16 in, fp32 accumulate), operands staged through
// shared memory by plain bounds-checked loads (any leading dimension, any transpose, any tail: out-of-range elements
// read as zero); the epilogue forms alpha·AB + beta·C in fp32 and rounds once (beta = 0 never reads C), as gemm()
// does. Otherwise (fp32, whose products are pedantic cuBLAS ones the CPU comparisons rely on; one group; groups large
// enough that a launch each is cheap beside cuBLAS' speed) it calls gemm() once per group.
#include <mma.h>

#include <climits>
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
  float alpha, beta;
  const bf16* A[kMaxGroups];
  const bf16* B[kMaxGroups];
  bf16* C[kMaxGroups];
  int M[kMaxGroups], K[kMaxGroups];
  int tile0[kMaxGroups + 1];  // first CTA of each group; tile0[count] = the grid
};

// Stages the ROWS × COLS tile at (r0, c0) of a logical [R, C] operand into s: element (i, j) is P[j·ld + i] when
// TRANS (stored transposed), else P[i·ld + j]; zero outside [R, C]. Consecutive threads walk the stored rows, so the
// loads coalesce either way.
template <int ROWS, int COLS, bool TRANS, int LDS>
__device__ __forceinline__ void stage(bf16 (*s)[LDS], const bf16* __restrict__ P, int ld, int r0, int c0, int R,
                                      int C, int tid) {
#pragma unroll
  for (int i = 0; i < ROWS * COLS / kThreads; ++i) {
    const int idx = tid + i * kThreads;
    const int r = TRANS ? idx % ROWS : idx / COLS, c = TRANS ? idx / ROWS : idx % COLS;
    const int gr = r0 + r, gc = c0 + c;
    s[r][c] = gr < R && gc < C ? P[TRANS ? size_t(gc) * ld + gr : size_t(gr) * ld + gc] : __float2bfloat16_rn(0.f);
  }
}

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

  for (int k0 = 0; k0 < K; k0 += kBK) {
    stage<kBM, kBK, TA>(sA, A, p.lda, m0, k0, M, K, tid);  // op(A) [M, K]
    stage<kBK, kBN, TB>(sB, B, p.ldb, k0, n0, K, N, tid);  // op(B) [K, N]
    __syncthreads();
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
    auto flush = [&] {
      if (p.count) launch(p, trans_a, trans_b, ctx.stream());
      p.count = 0, p.tile0[0] = 0;
    };
    p.tile0[0] = 0;
    for (const GemmGroup<T>& g : groups) {
      if (g.M == 0) continue;
      WATTMOE_DENSE_REQUIRE(fits_int(g.M) && fits_int(g.K), "gemm_grouped: dimension exceeds INT_MAX");
      const int64_t tiles = (g.M + kBM - 1) / kBM * p.tiles_n;
      if (p.count == kMaxGroups || p.tile0[p.count] + tiles > INT_MAX) flush();
      p.A[p.count] = g.A, p.B[p.count] = g.B, p.C[p.count] = g.C;
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
