// MoE routing, permutation and combine kernels (bf16 storage, fp32 math).
//  route:   x [T,H], router [E,H] -> logits [T,E] (bf16), topk_ids [T,k], topk_w [T,k] (fp32), counts [E] (+=).
//           One warp per 1 or 2 tokens: the router GEMM, softmax, top-k and weights in one kernel.
//  permute: topk_ids, topk_w, counts -> sorted_token / sorted_w [max_rows], inv [T*k], tile_expert [max_tiles].
//           One CTA of 1024 threads, stable counting sort in (token, slot) order.
//  combine: y [rows,H] -> out [T,H], out[t] = Σ_s y[row(t,s)] (fp32 sum, one bf16 rounding). Overwrites out.
#include <cfloat>

#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {
namespace {

constexpr int kRouteWarps = 8;
constexpr int kExpertGroup = 8;  // router dot products computed 8 experts at a time (registers, compile-time index)

// Softmax, top-k and weights of token t from its bf16-valued logits lg[E] (shared memory), one warp.
__device__ __forceinline__ void route_select(const RouteArgs& a, int t, const float* lg, int lane) {
  float mx = -FLT_MAX;
  for (int e = lane; e < a.E; e += 32) {
    mx = fmaxf(mx, lg[e]);
    a.logits[size_t(t) * a.E + e] = __float2bfloat16_rn(lg[e]);  // exact: already bf16-valued
  }
  mx = warp_max(mx);
  float sum = 0.f;
  for (int e = lane; e < a.E; e += 32) sum += expf(lg[e] - mx);
  sum = warp_sum(sum);

  // Top-k by logit, ties to the lower index. Lane owns experts lane + 32*j; `taken` marks chosen ones.
  uint32_t taken = 0;
  float wsum = 0.f;
  int* ids = a.topk_ids + size_t(t) * a.k;
  float* ws = a.topk_w + size_t(t) * a.k;
  for (int s = 0; s < a.k; ++s) {
    float best = -INFINITY;
    int bi = a.E;  // a.E = none yet
    for (int e = lane, j = 0; e < a.E; e += 32, ++j) {
      if (taken & (1u << j)) continue;
      const float v = lg[e];
      if (bi == a.E || v > best) best = v, bi = e;  // ascending e: equal values keep the lower index
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi != a.E && (bi == a.E || ob > best || (ob == best && oi < bi))) best = ob, bi = oi;
    }
    // Every lane holds the same winner unless NaN logits break the order; lane 0's choice is the one written.
    bi = __shfl_sync(0xffffffffu, bi, 0);
    if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
    const float p = expf(lg[bi] - mx) / sum;
    wsum += p;
    if (lane == 0) {
      ids[s] = bi;
      ws[s] = p;
      atomicAdd(a.counts + bi, 1);
    }
  }
  if (a.renorm && lane == 0 && wsum > 0.f)
    for (int s = 0; s < a.k; ++s) ws[s] = ws[s] / wsum;
}

// TPW tokens per warp share each router-weight load (L1 traffic per token / TPW); the chunk loop is unrolled so that
// several 16-byte loads are in flight per lane (the x rows come from DRAM). Per token and expert the sum order is
// the same for any TPW (lane's chunks ascending, then the xor tree), so the logits are bitwise the same.
template <int TPW>
__global__ void __launch_bounds__(kRouteWarps * 32) route_kernel(RouteArgs a) {
  __shared__ float s_logit[kRouteWarps][TPW][kMaxExperts];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int t0 = (blockIdx.x * kRouteWarps + warp) * TPW;
  if (t0 >= a.T) return;  // whole warps leave; no block-wide barrier below
  const int nt = min(TPW, a.T - t0);
  const int nchunk = a.H / 8;

  for (int e0 = 0; e0 < a.E; e0 += kExpertGroup) {
    float acc[TPW][kExpertGroup];
#pragma unroll
    for (int t = 0; t < TPW; ++t)
#pragma unroll
      for (int j = 0; j < kExpertGroup; ++j) acc[t][j] = 0.f;
#pragma unroll 2
    for (int c = lane; c < nchunk; c += 32) {
      uint4 wv[kExpertGroup], xv[TPW];
#pragma unroll
      for (int j = 0; j < kExpertGroup; ++j)
        wv[j] = e0 + j < a.E ? ld_ro(a.router + size_t(e0 + j) * a.H + c * 8) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int t = 0; t < TPW; ++t)
        xv[t] = t < nt ? ld_ro(a.x + size_t(t0 + t) * a.H + c * 8) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int t = 0; t < TPW; ++t) {
        float xf[8];
        unpack8(xv[t], xf);
#pragma unroll
        for (int j = 0; j < kExpertGroup; ++j) {
          float wf[8];
          unpack8(wv[j], wf);
#pragma unroll
          for (int q = 0; q < 8; ++q) acc[t][j] = fmaf(xf[q], wf[q], acc[t][j]);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < TPW; ++t)
#pragma unroll
      for (int j = 0; j < kExpertGroup; ++j) {
        const float v = warp_sum(acc[t][j]);
        if (lane == 0 && e0 + j < a.E) s_logit[warp][t][e0 + j] = round_bf16(v);
      }
  }
  __syncwarp();

  for (int tt = 0; tt < nt; ++tt) {
    const int t = t0 + tt;
    const float* lg = s_logit[warp][tt];
    route_select(a, t, lg, lane);
  }
}

constexpr int kPermThreads = 1024;
constexpr int kPermWarps = kPermThreads / 32;

__global__ void __launch_bounds__(kPermThreads) permute_kernel(PermuteArgs a) {
  __shared__ int s_off[kMaxExperts + 1];
  __shared__ int s_base[kMaxExperts];
  __shared__ int s_wcnt[kPermWarps][kMaxExperts];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int E = a.E, BM = a.block_m, pairs = a.T * a.k;

  for (int i = tid; i < kPermWarps * kMaxExperts; i += kPermThreads) (&s_wcnt[0][0])[i] = 0;
  if (tid == 0) {
    int o = 0;
    for (int e = 0; e < E; ++e) {
      s_off[e] = o;
      o += (a.counts[e] + BM - 1) / BM * BM;
    }
    s_off[E] = o;
  }
  for (int r = tid; r < a.max_rows; r += kPermThreads) a.sorted_token[r] = -1, a.sorted_w[r] = 0.f;
  __syncthreads();
  for (int m = tid; m < a.max_tiles; m += kPermThreads) {
    int ex = -1;
    const int r0 = m * BM;
    if (r0 < s_off[E])
      for (int e = 0; e < E; ++e)
        if (r0 >= s_off[e] && r0 < s_off[e + 1]) ex = e;
    a.tile_expert[m] = ex;
  }
  for (int e = tid; e < E; e += kPermThreads) s_base[e] = s_off[e];
  __syncthreads();

  const uint32_t lt_mask = (1u << lane) - 1u;
  for (int p0 = 0; p0 < pairs; p0 += kPermThreads) {
    const int p = p0 + tid;
    const int e = p < pairs ? a.topk_ids[p] : -1;
    const uint32_t peers = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(peers & lt_mask);
    if (e >= 0 && rank == 0) s_wcnt[warp][e] = __popc(peers);
    __syncthreads();
    if (e >= 0) {
      int r = s_base[e] + rank;
      for (int w = 0; w < warp; ++w) r += s_wcnt[w][e];
      a.sorted_token[r] = p / a.k;
      a.sorted_w[r] = a.topk_w[p];
      a.inv[p] = r;
    }
    __syncthreads();
    for (int ex = tid; ex < E; ex += kPermThreads) {
      int add = 0;
      for (int w = 0; w < kPermWarps; ++w) add += s_wcnt[w][ex], s_wcnt[w][ex] = 0;
      s_base[ex] += add;
    }
    __syncthreads();
  }
}

__global__ void __launch_bounds__(256) combine_kernel(const bf16* __restrict__ y, const int* __restrict__ inv, int k,
                                                      int H, bf16* __restrict__ out) {
  const int t = blockIdx.x;
  for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int s = 0; s < k; ++s) {
      const int r = inv ? inv[size_t(t) * k + s] : t * k + s;
      float f[8];
      unpack8(ld_ro(y + size_t(r) * H + c * 8), f);
#pragma unroll
      for (int q = 0; q < 8; ++q) acc[q] += f[q];
    }
    uint4 o;
    o.x = pack_bf16x2(acc[0], acc[1]);
    o.y = pack_bf16x2(acc[2], acc[3]);
    o.z = pack_bf16x2(acc[4], acc[5]);
    o.w = pack_bf16x2(acc[6], acc[7]);
    *reinterpret_cast<uint4*>(out + size_t(t) * H + c * 8) = o;
  }
}

}  // namespace

void launch_route(const RouteArgs& a, cudaStream_t s) {
  // 2 tokens per warp once that still gives every SM several CTAs (132 SMs: T >= 4096); 1 below, where the kernel
  // is bound by latency and more warps help.
  if (a.T >= 4096) {
    route_kernel<2><<<(a.T + 2 * kRouteWarps - 1) / (2 * kRouteWarps), kRouteWarps * 32, 0, s>>>(a);
  } else {
    route_kernel<1><<<(a.T + kRouteWarps - 1) / kRouteWarps, kRouteWarps * 32, 0, s>>>(a);
  }
  WATTMOE_CUDA_LAUNCHED();
}

void launch_permute(const PermuteArgs& a, cudaStream_t s) {
  permute_kernel<<<1, kPermThreads, 0, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

void launch_combine(const bf16* y, const int* inv, int T, int k, int H, bf16* out, cudaStream_t s) {
  const int threads = H / 8 >= 256 ? 256 : ((H / 8 + 31) / 32) * 32;
  combine_kernel<<<T, threads, 0, s>>>(y, inv, k, H, out);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda
