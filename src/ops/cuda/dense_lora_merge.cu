// lora_merge (dense_ops.h): W + scale·B·A rounded to bf16, for every item in one launch per kMaxItems items (the fused
// MoE path re-merges every expert's three matrices after each adaptation step; one launch per matrix was ~600
// launches a step on an 8-layer model). One thread per element of one item (grid y); the r products are read from
// B's row (the same for a warp's 32 columns: a broadcast) and A's column (coalesced across the warp).
#include <climits>
#include <vector>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

constexpr int kMaxItems = 64;  // per launch: the parameter block stays under the 4 KB kernel-argument limit

struct MergeParams {
  LoraMergeItem item[kMaxItems];
  int64_t out, in;
  int r;
  float scale;
};

__global__ void lora_merge_kernel(const __grid_constant__ MergeParams p) {
  const LoraMergeItem& it = p.item[blockIdx.y];
  const int64_t n = p.out * p.in;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e / p.in, c = e % p.in;
    float acc = 0.f;
    for (int j = 0; j < p.r; ++j) acc += it.B[o * p.r + j] * it.A[int64_t(j) * p.in + c];
    it.merged[e] = __float2bfloat16_rn(it.W[e] + p.scale * acc);
  }
}

}  // namespace

void lora_merge(Context& ctx, const std::vector<LoraMergeItem>& items, int64_t out, int64_t in, int64_t r,
                float scale) {
  WATTMOE_DENSE_REQUIRE(out >= 0 && in >= 0 && r >= 0 && r <= INT_MAX, "lora_merge: bad shape");
  if (items.empty() || out * in == 0) return;
  MergeParams p{};
  p.out = out, p.in = in, p.r = int(r), p.scale = scale;
  const unsigned blocks = std::min<unsigned>(elem_blocks(out * in), 2048);
  for (size_t at = 0; at < items.size(); at += kMaxItems) {
    const size_t count = std::min<size_t>(kMaxItems, items.size() - at);
    for (size_t i = 0; i < count; ++i) p.item[i] = items[at + i];
    lora_merge_kernel<<<dim3(blocks, unsigned(count)), 256, 0, ctx.stream()>>>(p);
    WATTMOE_CUDA_LAUNCHED();
  }
}

}  // namespace wattmoe::cuda
