// MoE routing, permutation and combine kernels (bf16 storage, fp32 math).
//  route:   x [T,H], router [E,H], policy block -> logits [T,E] (bf16), probs [T,E] (fp32), ids [T,S], weights [T,S]
//           (fp32), counts [E] (+=). One warp per 1 or 2 tokens: the router GEMM, softmax, the policy's per-token
//           selection and the weights in one kernel (moe_route_step.cu finishes budget and cost's second pass).
//  permute: ids, weights, counts -> sorted_token / sorted_w [max_rows], inv [T*S], tile_expert [max_tiles].
//           One CTA per 1024 pairs, stable counting sort in (token, slot) order; unused slots (-1) get no row.
//  combine: y [rows,H] -> out [T,H], out[t] = Σ_{used s} y[row(t,s)] (fp32 sum, one bf16 rounding). Overwrites out.
#include <algorithm>

#include "ops/cuda/moe_route_common.cuh"

namespace wattmoe::cuda {
namespace {

constexpr int kRouteWarps = 8;
constexpr int kExpertGroup = 8;  // router dot products computed 8 experts at a time (registers, compile-time index)

// Softmax and the policy's selection of token t from its bf16-valued logits lg[E] (shared memory), one warp. pr and
// sel are the warp's shared scratch; pen: the cost penalties (scored policies) or null.
__device__ __forceinline__ void route_token(const RouteArgs& a, const RouteKnobs& kn, int t, const float* lg,
                                            float* pr, uint8_t* sel, const double* pen, int* counts, int lane) {
  float mx = -FLT_MAX;
  for (int e = lane; e < a.E; e += 32) {
    mx = fmaxf(mx, lg[e]);
    a.logits[size_t(t) * a.E + e] = __float2bfloat16_rn(lg[e]);  // exact: already bf16-valued
  }
  mx = warp_max(mx);
  float sum = 0.f;
  for (int e = lane; e < a.E; e += 32) {
    const float x = expf(lg[e] - mx);
    pr[e] = x;
    sum += x;
  }
  sum = warp_sum(sum);
  for (int e = lane; e < a.E; e += 32) {
    const float p = pr[e] / sum;
    pr[e] = p;
    a.probs[size_t(t) * a.E + e] = p;
  }
  __syncwarp();
  int cnt;
  if (pen)
    cnt = warp_rank<double>(a.E, kn.K, kn.mask, [&](int e) { return __dsub_rn(double(lg[e]), pen[e]); }, lane, sel);
  else
    cnt = warp_rank<float>(a.E, kn.K, kn.mask, [&](int e) { return pr[e]; }, lane, sel);
  finish_row(kn, t, a.slots, a.renorm, sel, cnt, [&](int e) { return pr[e]; }, a.topk_ids, a.topk_w, counts, lane);
}

// TPW tokens per warp share each router-weight load (L1 traffic per token / TPW); the chunk loop is unrolled so that
// several 16-byte loads are in flight per lane (the x rows come from DRAM). Per token and expert the sum order is
// the same for any TPW (lane's chunks ascending, then the xor tree), so the logits are bitwise the same.
template <int TPW>
__global__ void __launch_bounds__(kRouteWarps * 32) route_kernel(RouteArgs a) {
  __shared__ float s_logit[kRouteWarps][TPW][kMaxExperts];
  __shared__ float s_prob[kRouteWarps][kMaxExperts];  // the token being selected
  __shared__ uint8_t s_sel[kRouteWarps][kMaxExperts];
  __shared__ double s_pen[kMaxExperts];
  __shared__ double s_mean;
  // cost's penalties need the whole block (barriers) before warps leave; the other knobs are read after the router
  // GEMM, so that they do not hold registers through it. `scored` is the same on every thread.
  const bool scored = a.policy->policy == MoeRoute::Cost && a.policy->lambda != 0.f;
  if (scored) cost_penalties(a.policy, a.E, a.T, a.policy->lambda, nullptr, 0, s_pen, &s_mean);
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

  const RouteKnobs kn = load_knobs(a.policy, a.E, a.k, a.slots);
  if (blockIdx.x == 0 && threadIdx.x == 0 && kn.faults) atomicOr(a.status, kn.faults);
  int* counts = step_policy(kn) ? a.counts1 : a.counts;
  for (int tt = 0; tt < nt; ++tt)
    route_token(a, kn, t0 + tt, s_logit[warp][tt], s_prob[warp], s_sel[warp], scored ? s_pen : nullptr, counts, lane);
}

constexpr int kPermThreads = 1024;
constexpr int kPermWarps = kPermThreads / 32;

// One CTA per chunk of kPermThreads pairs, one pair per thread. Each CTA counts, per expert, the pairs of the chunks
// before its own (re-reading their ids: at most pairs ints, from L2), which is where its chunk's rows of each expert
// start; inside the chunk a pair's rank among its warp's pairs of the same expert (match_any) plus the same
// expert's pairs of the earlier warps gives its row. Rows therefore follow (token, slot) order inside every expert,
// whatever the CTA count. Padding rows (an expert's rows past its count, and the rows past the last tile) are
// written by whichever CTA their grid-stride index falls to: they never meet a routed pair's row.
__global__ void __launch_bounds__(kPermThreads) permute_kernel(PermuteArgs a) {
  __shared__ int s_off[kMaxExperts + 1];
  __shared__ int s_base[kMaxExperts];
  __shared__ int s_wcnt[kPermWarps][kMaxExperts];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int E = a.E, BM = a.block_m, pairs = a.T * a.slots, p0 = blockIdx.x * kPermThreads;
  const int gtid = blockIdx.x * kPermThreads + tid, gthreads = gridDim.x * kPermThreads;

  for (int i = tid; i < kPermWarps * kMaxExperts; i += kPermThreads) (&s_wcnt[0][0])[i] = 0;
  for (int e = tid; e < E; e += kPermThreads) s_base[e] = 0;
  if (tid == 0) {
    int o = 0;
    for (int e = 0; e < E; ++e) {
      s_off[e] = o;
      o += (a.counts[e] + BM - 1) / BM * BM;
    }
    s_off[E] = o;
  }
  __syncthreads();
  for (int r = gtid; r < a.max_rows; r += gthreads) {  // padding rows only
    bool pad = true;
    if (r < s_off[E]) {
      int e = 0;
      while (r >= s_off[e + 1]) ++e;  // skips empty experts
      pad = r >= s_off[e] + a.counts[e];
    }
    if (pad) a.sorted_token[r] = -1, a.sorted_w[r] = 0.f;
  }
  for (int m = gtid; m < a.max_tiles; m += gthreads) {
    int ex = -1;
    const int r0 = m * BM;
    if (r0 < s_off[E])
      for (int e = 0; e < E; ++e)
        if (r0 >= s_off[e] && r0 < s_off[e + 1]) ex = e;
    a.tile_expert[m] = ex;
  }
  // Pairs of the earlier chunks, per expert: one shared atomic per (warp step, distinct expert).
  for (int q = tid; q < p0; q += kPermThreads) {
    const int e = a.topk_ids[q];
    const uint32_t peers = __match_any_sync(0xffffffffu, e);  // p0 is a multiple of the block: whole warps
    if (e >= 0 && lane == __ffs(peers) - 1) atomicAdd(&s_base[e], __popc(peers));
  }
  __syncthreads();
  if (tid < E) s_base[tid] += s_off[tid];
  __syncthreads();

  const uint32_t lt_mask = (1u << lane) - 1u;
  const int p = p0 + tid;
  const int e = p < pairs ? a.topk_ids[p] : -1;
  const uint32_t peers = __match_any_sync(0xffffffffu, e);
  const int rank = __popc(peers & lt_mask);
  if (e >= 0 && rank == 0) s_wcnt[warp][e] = __popc(peers);
  __syncthreads();
  if (e >= 0) {
    int r = s_base[e] + rank;
    for (int w = 0; w < warp; ++w) r += s_wcnt[w][e];
    a.sorted_token[r] = p / a.slots;
    a.sorted_w[r] = a.topk_w[p];
    a.inv[p] = r;
  }
}

__global__ void __launch_bounds__(256) combine_kernel(const bf16* __restrict__ y, const int* __restrict__ inv,
                                                      const int* __restrict__ ids, int S, int H,
                                                      bf16* __restrict__ out) {
  const int t = blockIdx.x;
  for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int s = 0; s < S; ++s) {
      const int p = t * S + s;
      if (__ldg(ids + p) < 0) continue;  // unused slot: no row
      const int r = inv ? inv[p] : p;
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
  const int chunks = std::max(1, (a.T * a.slots + kPermThreads - 1) / kPermThreads);
  permute_kernel<<<chunks, kPermThreads, 0, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

void launch_combine(const bf16* y, const int* inv, const int* ids, int T, int slots, int H, bf16* out,
                    cudaStream_t s) {
  const int threads = H / 8 >= 256 ? 256 : ((H / 8 + 31) / 32) * 32;
  combine_kernel<<<T, threads, 0, s>>>(y, inv, ids, slots, H, out);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda
