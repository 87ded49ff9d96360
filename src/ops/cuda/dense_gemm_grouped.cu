// gemm_grouped (dense_ops.h): many small products of one shape family in one launch. The work it exists for is the
// routed experts' FFN on rows grouped by expert (gpu/ffn_cuda.cpp): a few dozen rows per expert, where a cuBLAS call
// per expert and per matrix is bound by launches, not by the GPU.
// bf16, more than one group and small groups: one launch of the kernel below per kMaxGroups groups; each CTA computes
// a 64 × 64 tile of one group's C with WMMA tensor-core fragments (bf16 in, fp32 accumulate), operands staged through
// shared memory through registers, the next K tile loaded while the current one is multiplied (16-byte loads where
// the operands are 8-element aligned, else bounds-checked element loads; any leading dimension, any transpose, any
// tail: out-of-range elements read as zero); the epilogue forms alpha·AB + beta·C in fp32 and rounds once (beta = 0
// never reads C), as gemm() does. A launch of too few tiles to fill the GPU splits K (see Params' comment).
// Otherwise (fp32, whose products are pedantic cuBLAS ones the CPU comparisons rely on; one group; groups large
// enough that a launch each is cheap beside cuBLAS' speed) it calls gemm() once per group.
#include <mma.h>

#include <algorithm>
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

// Split K: a launch whose tiles are too few to fill the GPU (the LoRA products of rank r, a few dozen rows per expert:
// a handful of CTAs, each walking K = 512..1024 alone) cuts every group's K into `splits` slices of whole kBK tiles;
// each CTA writes its slice's fp32 product to a workspace and gemm_grouped_reduce adds the slices in order (so the
// result does not depend on scheduling), then forms alpha·sum + beta·C as the one-slice epilogue does.
constexpr int kMinKTilesPerSplit = 2;

struct Params {
  int count, N, lda, ldb, ldc, tiles_n;
  int splits;         // K slices per tile (1: no workspace, the epilogue writes C)
  bool vec_a, vec_b;  // every group's A (B) pointer and lda (ldb) are multiples of 8 elements: 16-byte loads
  float alpha, beta;
  float* ws;  // splits > 1: group g's slices at ws + elem0[g]·splits, [splits][M][N] row-major
  const bf16* A[kMaxGroups];
  const bf16* B[kMaxGroups];
  bf16* C[kMaxGroups];
  int M[kMaxGroups], K[kMaxGroups];
  int tile0[kMaxGroups + 1];      // first tile of each group; tile0[count]: the tiles of one K slice
  int64_t elem0[kMaxGroups + 1];  // first element of each group's C (M·N each); elem0[count]: all of them
};

// The group holding index i of a per-group prefix array (first[0] = 0, sorted): the last g with first[g] <= i.
template <class I>
__device__ __forceinline__ int group_of(const I* first, int count, I i) {
  int g = 0;
  while (g + 1 < count && first[g + 1] <= i) ++g;
  return g;
}

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
  const int slice = int(blockIdx.x) / p.tile0[p.count], b = int(blockIdx.x) % p.tile0[p.count];
  const int g = group_of(p.tile0, p.count, b);
  const int t = b - p.tile0[g], m0 = (t / p.tiles_n) * kBM, n0 = (t % p.tiles_n) * kBN;
  const int M = p.M[g], N = p.N;
  // This CTA's K slice [k_begin, K): whole kBK tiles; elements past K read as zero.
  const int k_tiles = (p.K[g] + kBK - 1) / kBK, per_slice = (k_tiles + p.splits - 1) / p.splits;
  const int k_begin = min(p.K[g], slice * per_slice * kBK), K = min(p.K[g], k_begin + per_slice * kBK);
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
  if (k_begin < K)
    la.load(A, p.lda, m0, k_begin, M, K, p.vec_a, tid), lb.load(B, p.ldb, k_begin, n0, K, N, p.vec_b, tid);
  for (int k0 = k_begin; k0 < K; k0 += kBK) {
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
    if (p.splits > 1) {  // this slice's share, unscaled; gemm_grouped_reduce finishes
      p.ws[p.elem0[g] * p.splits + (int64_t(slice) * M + m) * N + n] = sC[r][c];
      continue;
    }
    bf16* out = C + size_t(m) * p.ldc + n;
    const float v = p.alpha * sC[r][c];
    *out = __float2bfloat16_rn(p.beta == 0.f ? v : v + p.beta * __bfloat162float(*out));
  }
}

// C = alpha·(the slices' sum, in slice order) + beta·C, one thread per element of every group.
__global__ void gemm_grouped_reduce(const __grid_constant__ Params p) {
  const int64_t n = p.elem0[p.count];
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int g = group_of(p.elem0, p.count, i);
    const int64_t e = i - p.elem0[g], mn = int64_t(p.M[g]) * p.N;
    const float* slices = p.ws + p.elem0[g] * p.splits + e;
    float sum = 0.f;
    for (int sl = 0; sl < p.splits; ++sl) sum += slices[sl * mn];
    bf16* out = p.C[g] + (e / p.N) * p.ldc + e % p.N;
    const float v = p.alpha * sum;
    *out = __float2bfloat16_rn(p.beta == 0.f ? v : v + p.beta * __bfloat162float(*out));
  }
}

void launch(const Params& p, bool ta, bool tb, cudaStream_t s) {
  const unsigned grid = unsigned(p.tile0[p.count]) * unsigned(p.splits);
  if (grid == 0) return;
  if (ta && tb) gemm_grouped_kernel<true, true><<<grid, kThreads, 0, s>>>(p);
  else if (ta) gemm_grouped_kernel<true, false><<<grid, kThreads, 0, s>>>(p);
  else if (tb) gemm_grouped_kernel<false, true><<<grid, kThreads, 0, s>>>(p);
  else gemm_grouped_kernel<false, false><<<grid, kThreads, 0, s>>>(p);
  WATTMOE_CUDA_LAUNCHED();
  if (p.splits > 1) {
    gemm_grouped_reduce<<<elem_blocks(p.elem0[p.count]), 256, 0, s>>>(p);
    WATTMOE_CUDA_LAUNCHED();
  }
}

// The K slices for a launch of `tiles` tiles whose longest K has k_tiles tiles: enough CTAs for two per SM, each
// slice at least kMinKTilesPerSplit tiles long; 1 when the tiles alone fill the GPU.
int choose_splits(int64_t tiles, int64_t k_tiles, int sms) {
  const int64_t want = (2 * int64_t(sms) + tiles - 1) / tiles, most = k_tiles / kMinKTilesPerSplit;
  return int(std::max<int64_t>(1, std::min(want, most)));
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
    int dev = 0, sms = 0;
    WATTMOE_CUDA_CALL(cudaGetDevice(&dev));
    WATTMOE_CUDA_CALL(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    int64_t k_tiles = 0;  // the longest K of the launch, in tiles
    auto flush = [&] {
      if (p.count) {
        p.splits = choose_splits(p.tile0[p.count], k_tiles, sms);
        Scratch<float> ws(ctx.stream(), p.splits > 1 ? size_t(p.elem0[p.count] * p.splits) : 0);
        p.ws = ws.get();
        launch(p, trans_a, trans_b, ctx.stream());
      }
      p.count = 0, p.tile0[0] = 0, p.elem0[0] = 0, p.vec_a = p.vec_b = true, k_tiles = 0;
    };
    p.vec_a = p.vec_b = true;
    for (const GemmGroup<T>& g : groups) {
      if (g.M == 0) continue;
      WATTMOE_DENSE_REQUIRE(fits_int(g.M) && fits_int(g.K), "gemm_grouped: dimension exceeds INT_MAX");
      const int64_t tiles = (g.M + kBM - 1) / kBM * p.tiles_n;
      if (p.count == kMaxGroups || p.tile0[p.count] + tiles > INT_MAX) flush();
      p.A[p.count] = g.A, p.B[p.count] = g.B, p.C[p.count] = g.C;
      p.vec_a = p.vec_a && aligned(g.A, lda), p.vec_b = p.vec_b && aligned(g.B, ldb);
      p.M[p.count] = int(g.M), p.K[p.count] = int(g.K);
      p.tile0[p.count + 1] = int(p.tile0[p.count] + tiles);
      p.elem0[p.count + 1] = p.elem0[p.count] + g.M * N;
      k_tiles = std::max(k_tiles, (g.K + kBK - 1) / kBK);
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
