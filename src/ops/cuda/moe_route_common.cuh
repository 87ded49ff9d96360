// Device helpers of the routing kernels (moe_route.cu: first pass per token; moe_route_step.cu: step-level second
// pass and budget): the policy block read into registers, the cost penalties of `cost`, a warp's ranking of one
// token's experts, and the row write (policy's kept prefix, route weights, counts).
//
// Exactness against the CPU policies (moe/policy.cpp), which rank fp32 probabilities or double scores:
//  - probabilities are compared as fp32, scores as double, ties to the lower expert index, masked experts skipped;
//  - every double operation that the CPU code performs is done here with the _rn intrinsics in the CPU's order, so
//    nvcc cannot contract a multiply and an add into an FMA (the host build has no FMA contraction: ISO C++ mode);
//  - route weights are fp32 sums in slot order and one fp32 division, as route_weights<float>.
// Included by src/ops/cuda/*.cu only.
#pragma once
#include <cfloat>

#include "ops/cuda/moe_common.cuh"

namespace wattmoe::cuda {

constexpr int kMaskWords = kMaxExperts / 32;

// The knobs of one launch, read by every thread from the device block (uniform loads) and clamped into range so
// that no index leaves the buffers (faults: kRouteFault* bits for the ones that were out of range).
struct RouteKnobs {
  int policy;  // MoeRoute as int; Mask is routed as TopK, an unknown id as TopK (fault)
  int K, k_min, reuse;
  float lambda, p, beta;
  uint32_t mask[kMaskWords];  // bits of experts >= E cleared
  int faults;
};

__device__ __forceinline__ RouteKnobs load_knobs(const MoeRoutePolicy* pol, int E, int model_k, int S) {
  RouteKnobs kn;
  kn.faults = 0;
  int id = int(pol->policy);
  if (id < 0 || id >= kMoeRouteCount) kn.faults |= kRouteFaultPolicy, id = int(MoeRoute::TopK);
  if (id == int(MoeRoute::Mask)) id = int(MoeRoute::TopK);
  kn.policy = id;
  const int kcap = min(S, E);
  int K = pol->k_max != 0 ? pol->k_max : model_k;
  if (K < 1 || K > kcap) kn.faults |= kRouteFaultK, K = max(1, min(K, kcap));
  kn.K = K;
  int kmin = pol->k_min;
  if (kmin < 1 || kmin > K) kn.faults |= kRouteFaultKMin, kmin = max(1, min(kmin, K));
  kn.k_min = kmin;
  kn.reuse = pol->reuse_min_tokens;
  kn.lambda = pol->lambda;
  kn.p = pol->p;
  kn.beta = pol->beta;
  bool any_left = false;
#pragma unroll
  for (int j = 0; j < kMaskWords; ++j) {
    const int n = E - 32 * j;  // experts covered by word j
    const uint32_t valid = n >= 32 ? 0xffffffffu : (n > 0 ? (1u << n) - 1u : 0u);
    kn.mask[j] = pol->mask[j] & valid;
    any_left = any_left || (~kn.mask[j] & valid) != 0u;
  }
  if (!any_left) kn.faults |= kRouteFaultMask;
  if ((id == int(MoeRoute::Cost) || id == int(MoeRoute::Budget)) && pol->cost_experts != E)
    kn.faults |= kRouteFaultCosts;
  return kn;
}

// cost with λ != 0 ranks by logit − pen_e.
__device__ __forceinline__ bool scored_policy(const RouteKnobs& kn) {
  return kn.policy == int(MoeRoute::Cost) && kn.lambda != 0.f;
}
// Policies that launch_route_step finishes (the first pass writes counts1 for them, not counts).
__device__ __forceinline__ bool step_policy(const RouteKnobs& kn) {
  return kn.policy == int(MoeRoute::Budget) || (scored_policy(kn) && kn.reuse > 0);
}

// Block-wide (every thread of the block must call it): pen[e] = λ · (price_e / mean) (λ · 0 when mean <= 0) for
// e < E, with c_e = a_e / T + b_e, mean = (Σ_e c_e in e order) / E, price_e = c_e, or b_e where counts1 is given and
// counts1[e] >= reuse (the second pass: that expert's fixed cost is paid anyway). As moe/policy.cpp's CostPolicy,
// operation by operation in double. pen [kMaxExperts] and *mean are shared memory.
__device__ __forceinline__ void cost_penalties(const MoeRoutePolicy* pol, int E, int T, float lambda,
                                               const int* counts1, int reuse, double* pen, double* mean) {
  for (int e = threadIdx.x; e < E; e += blockDim.x)
    pen[e] = __dadd_rn(__ddiv_rn(double(pol->fixed[e]), double(T)), double(pol->per_token[e]));
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int e = 0; e < E; ++e) sum = __dadd_rn(sum, pen[e]);
    *mean = __ddiv_rn(sum, double(E));
  }
  __syncthreads();
  const double m = *mean;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    const double price = counts1 && counts1[e] >= reuse ? double(pol->per_token[e]) : pen[e];
    pen[e] = __dmul_rn(double(lambda), m > 0 ? __ddiv_rn(price, m) : 0.0);
  }
  __syncthreads();
}

// One warp ranks one token's unmasked experts by key(e) (descending, ties to the lower index) into sel[0..cnt),
// cnt = min(K, unmasked experts); sel is per-warp shared memory written by lane 0. Returns cnt on every lane.
// Lane l owns experts l + 32j (j < 8); `taken` marks chosen and masked ones.
template <class Key, class KeyFn>
__device__ __forceinline__ int warp_rank(int E, int K, const uint32_t (&mask)[kMaskWords], KeyFn key, int lane,
                                         uint8_t* sel) {
  uint32_t taken = 0;
#pragma unroll
  for (int j = 0; j < kMaskWords; ++j) taken |= ((mask[j] >> lane) & 1u) << j;
  int cnt = 0;
  for (int s = 0; s < K; ++s) {
    Key best = Key(0);
    int bi = E;  // E = none yet
    for (int e = lane, j = 0; e < E; e += 32, ++j) {
      if (taken & (1u << j)) continue;
      const Key v = key(e);
      if (bi == E || v > best) best = v, bi = e;  // ascending e: equal values keep the lower index
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const Key ob = __shfl_xor_sync(0xffffffffu, best, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi != E && (bi == E || ob > best || (ob == best && oi < bi))) best = ob, bi = oi;
    }
    // Every lane holds the same winner unless NaN keys break the order; lane 0's choice is the one used.
    bi = __shfl_sync(0xffffffffu, bi, 0);
    if (bi >= E) break;  // no unmasked expert left
    if ((bi & 31) == lane) taken |= 1u << (bi >> 5);
    if (lane == 0) sel[s] = uint8_t(bi);
    cnt = s + 1;
  }
  __syncwarp();
  return cnt;
}

// One warp writes token t's row from its ranking sel[0..cnt): keeps the policy's prefix m (top_p: fewest slots whose
// cumulative probability reaches p, clamped to [k_min, cnt]; skip: stop at the first slot s >= max(k_min, 1) whose
// probability is below β × slot 0's; others: all cnt), ids[t*S + s] = sel[s] for s < m and -1 after, weights = the
// probabilities renormalised over the m slots when renorm and their fp32 sum is > 0 (0 in unused slots), and
// counts[e] += 1 per used slot. prob(e): the token's fp32 probability of expert e.
template <class ProbFn>
__device__ __forceinline__ void finish_row(const RouteKnobs& kn, int t, int S, bool renorm, const uint8_t* sel,
                                           int cnt, ProbFn prob, int* ids, float* w, int* counts, int lane) {
  int m = cnt;
  float wsum = 0.f;
  if (lane == 0) {
    if (kn.policy == int(MoeRoute::TopP)) {
      double cum = 0.0;
      for (int s = 0; s < cnt; ++s) {
        cum = __dadd_rn(cum, double(prob(sel[s])));
        if (cum >= double(kn.p)) {
          m = s + 1;
          break;
        }
      }
      m = min(max(m, kn.k_min), cnt);
    } else if (kn.policy == int(MoeRoute::Skip) && cnt > 0) {
      const double thr = __dmul_rn(double(kn.beta), double(prob(sel[0])));
      for (int s = max(kn.k_min, 1); s < cnt; ++s)
        if (double(prob(sel[s])) < thr) {
          m = s;
          break;
        }
    }
    for (int s = 0; s < m; ++s) wsum += prob(sel[s]);
  }
  m = __shfl_sync(0xffffffffu, m, 0);
  wsum = __shfl_sync(0xffffffffu, wsum, 0);
  for (int s = lane; s < S; s += 32) {
    int e = -1;
    float ws = 0.f;
    if (s < m) {
      e = sel[s];
      const float p = prob(e);
      ws = renorm && wsum > 0.f ? p / wsum : p;
      atomicAdd(counts + e, 1);
    }
    ids[size_t(t) * S + s] = e;
    w[size_t(t) * S + s] = ws;
  }
  __syncwarp();
}

}  // namespace wattmoe::cuda
