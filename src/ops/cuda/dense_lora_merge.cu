// lora_merge (dense_ops.h): W + scale·B·A rounded to bf16, for every item in one launch per kMaxItems items (the fused
// MoE path re-merges every expert's three matrices after each adaptation step; one launch per matrix was ~600
// launches a step on an 8-layer model). The work is bound by memory: W is read (fp32) and the merge written (bf16)
// once, so each element must cost no more than that. A thread owns kCols adjacent columns and keeps A's r × kCols
// block of them in registers (ranks up to kMaxRegRank); a CTA (grid x) walks kRows rows of one item (grid y), reading
// each row's r values of B (the same for all threads: a broadcast) and W's row once, coalesced across the warp. Ranks
// above kMaxRegRank take a plain kernel that reads A from the cache for every element.
#include <climits>
#include <cstdint>
#include <vector>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

constexpr int kMaxItems = 64;  // per launch: the parameter block stays under the 4 KB kernel-argument limit
constexpr int kCols = 4;       // columns per thread
constexpr int kRows = 16;      // rows per CTA
constexpr int kMaxRegRank = 16;

struct MergeParams {
  LoraMergeItem item[kMaxItems];
  int64_t out, in;
  int r;
  float scale;
};

// Σ_j B[o, j]·A[j, c] in order j = 0..r−1, as the reference.
template <int R>
__global__ void lora_merge_kernel(const __grid_constant__ MergeParams p) {
  const LoraMergeItem& it = p.item[blockIdx.y];
  const int64_t o0 = int64_t(blockIdx.x) * kRows, o1 = o0 + kRows < p.out ? o0 + kRows : p.out;
  for (int64_t c0 = int64_t(threadIdx.x) * kCols; c0 < p.in; c0 += int64_t(blockDim.x) * kCols) {
    float a[R][kCols];
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
      for (int q = 0; q < kCols; ++q) a[j][q] = j < p.r && c0 + q < p.in ? it.A[int64_t(j) * p.in + c0 + q] : 0.f;
    // 8-byte stores of the kCols outputs where the row's columns c0.. sit on 8 bytes (else element stores).
    const bool vec = c0 + kCols <= p.in && p.in % kCols == 0 && reinterpret_cast<uintptr_t>(it.merged) % 8 == 0;
    for (int64_t o = o0; o < o1; ++o) {
      const float* b = it.B + o * p.r;
      const float* w = it.W + o * p.in + c0;
      bf16* m = it.merged + o * p.in + c0;
      float acc[kCols] = {};
#pragma unroll
      for (int j = 0; j < R; ++j) {
        if (j >= p.r) break;
        const float bj = b[j];
#pragma unroll
        for (int q = 0; q < kCols; ++q) acc[q] += bj * a[j][q];
      }
      bf16 v[kCols];
#pragma unroll
      for (int q = 0; q < kCols; ++q) v[q] = __float2bfloat16_rn(c0 + q < p.in ? w[q] + p.scale * acc[q] : 0.f);
      if (vec) {
        *reinterpret_cast<uint2*>(m) = *reinterpret_cast<const uint2*>(v);
      } else {
#pragma unroll
        for (int q = 0; q < kCols; ++q)
          if (c0 + q < p.in) m[q] = v[q];
      }
    }
  }
}

// Any rank: one thread per element, A read from the cache.
__global__ void lora_merge_any_rank_kernel(const __grid_constant__ MergeParams p) {
  const LoraMergeItem& it = p.item[blockIdx.y];
  for (int64_t o = blockIdx.x; o < p.out; o += gridDim.x)
    for (int64_t c = threadIdx.x; c < p.in; c += blockDim.x) {
      float acc = 0.f;
      for (int j = 0; j < p.r; ++j) acc += it.B[o * p.r + j] * it.A[int64_t(j) * p.in + c];
      it.merged[o * p.in + c] = __float2bfloat16_rn(it.W[o * p.in + c] + p.scale * acc);
    }
}

}  // namespace

void lora_merge(Context& ctx, const std::vector<LoraMergeItem>& items, int64_t out, int64_t in, int64_t r,
                float scale) {
  WATTMOE_DENSE_REQUIRE(out >= 0 && in >= 0 && r >= 0 && r <= INT_MAX, "lora_merge: bad shape");
  if (items.empty() || out * in == 0) return;
  MergeParams p{};
  p.out = out, p.in = in, p.r = int(r), p.scale = scale;
  const int64_t col_threads = (in + kCols - 1) / kCols;
  const unsigned threads = unsigned(std::min<int64_t>(256, (col_threads + 31) / 32 * 32));
  const unsigned tiles = unsigned(std::min<int64_t>((out + kRows - 1) / kRows, INT_MAX));
  for (size_t at = 0; at < items.size(); at += kMaxItems) {
    const size_t count = std::min<size_t>(kMaxItems, items.size() - at);
    for (size_t i = 0; i < count; ++i) p.item[i] = items[at + i];
    if (r <= 8) {
      lora_merge_kernel<8><<<dim3(tiles, unsigned(count)), threads, 0, ctx.stream()>>>(p);
    } else if (r <= kMaxRegRank) {
      lora_merge_kernel<kMaxRegRank><<<dim3(tiles, unsigned(count)), threads, 0, ctx.stream()>>>(p);
    } else {
      const unsigned rows = unsigned(std::min<int64_t>(out, 65535));
      lora_merge_any_rank_kernel<<<dim3(rows, unsigned(count)), row_threads(in), 0, ctx.stream()>>>(p);
    }
    WATTMOE_CUDA_LAUNCHED();
  }
}

}  // namespace wattmoe::cuda
