// Kernels of the profiling blocks (ops/cuda/profile_blocks.h): causal softmax to bf16, GQA head repeat, and the
// counter-hash bf16 fill used for random weights. Launch errors throw through WATTMOE_CUDA_LAUNCHED.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/moe_kernels.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe::cuda {

namespace {

constexpr int kSoftmaxThreads = 256;

__device__ __forceinline__ float block_reduce(float v, float* smem, bool is_max) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, u) : v + u;
  }
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < (int)(blockDim.x >> 5) ? smem[lane] : (is_max ? -INFINITY : 0.f);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float u = __shfl_xor_sync(0xffffffffu, v, o);
      v = is_max ? fmaxf(v, u) : v + u;
    }
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  const float r = smem[0];
  __syncthreads();  // smem is reused by the next reduction
  return r;
}

// One CTA per row (head h, query t); keys 0..t take part.
__global__ void causal_softmax_kernel(const float* __restrict__ scores, bf16* __restrict__ probs, int T) {
  __shared__ float smem[32];
  const long long row = blockIdx.x;
  const int t = int(row % T);
  const float* in = scores + row * T;
  bf16* out = probs + row * T;
  float m = -INFINITY;
  for (int j = threadIdx.x; j <= t; j += blockDim.x) m = fmaxf(m, in[j]);
  m = block_reduce(m, smem, true);
  float s = 0.f;
  for (int j = threadIdx.x; j <= t; j += blockDim.x) s += expf(in[j] - m);
  s = block_reduce(s, smem, false);
  const float inv = 1.f / s;
  for (int j = threadIdx.x; j < T; j += blockDim.x)
    out[j] = __float2bfloat16_rn(j <= t ? expf(in[j] - m) * inv : 0.f);
}

__global__ void repeat_kv_kernel(const bf16* __restrict__ src, bf16* __restrict__ dst, long long n, int heads,
                                 int kv_heads, int hd) {
  const int group = heads / kv_heads, qd = heads * hd, kvd = kv_heads * hd;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long t = i / qd;
    const int c = int(i % qd), h = c / hd, d = c % hd;
    dst[i] = src[t * kvd + (h / group) * hd + d];
  }
}

__global__ void fill_uniform_kernel(uint16_t* p, size_t n, float a, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull + seed * 0xd1b54a32d192ed03ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = float(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    const bf16 v = __float2bfloat16_rn((2.f * u - 1.f) * a);
    p[i] = *reinterpret_cast<const uint16_t*>(&v);
  }
}

int grid_for(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  return int(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

void launch_causal_softmax(const float* scores, void* probs_bf16, int rows, int T, cudaStream_t s) {
  causal_softmax_kernel<<<rows, kSoftmaxThreads, 0, s>>>(scores, static_cast<bf16*>(probs_bf16), T);
  WATTMOE_CUDA_LAUNCHED();
}

void launch_repeat_kv(const void* src, void* dst, int T, int heads, int kv_heads, int head_dim, cudaStream_t s) {
  const long long n = (long long)T * heads * head_dim;
  repeat_kv_kernel<<<grid_for(n, 256), 256, 0, s>>>(static_cast<const bf16*>(src), static_cast<bf16*>(dst), n, heads,
                                                     kv_heads, head_dim);
  WATTMOE_CUDA_LAUNCHED();
}

void launch_fill_uniform_bf16(void* dev, size_t n, float half_width, uint64_t seed, cudaStream_t s) {
  if (n == 0) return;
  fill_uniform_kernel<<<grid_for((long long)n, 256), 256, 0, s>>>(static_cast<uint16_t*>(dev), n, half_width, seed);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda
