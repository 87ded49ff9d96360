// The step-level part of routing (moe_kernels.h, launch_route_step): what needs every token's first-pass choice.
//  cost, λ != 0, reuse_min_tokens > 0: the second pass, one warp per token (grid-stride), every CTA computing the
//     re-priced penalties from the first pass's counts.
//  budget: CTA 0 alone runs moe/policy.cpp's BudgetPolicy greedy, step by step in the same order and with the same
//     double operations, so that the selection is the CPU's exactly:
//       1. floor: each token's first k_min slots; spent = Σ in (token, slot) order of b_e, + a_e at e's first floor
//          pair (thread 0 adds, the other threads stage the terms in shared memory chunk by chunk);
//       2. candidates: slots k_min..K-1 of every row (ids from the first pass, -1 skipped), compacted in (token,
//          slot) order with key = ~bits(prob) (descending probability as an ascending unsigned key);
//       3. fast path: if (spent + Σ candidate b_e + Σ a_e of experts first activated by a candidate) · (1 + 2^-20)
//          <= budget_j, every check the CPU makes passes (each is a rounded partial sum of these non-negative terms,
//          within n·2^-53 relative of the exact sum), so all candidates are kept; budget_j = inf always takes it;
//       4. otherwise a stable LSD radix sort (4 byte passes of the key, then one of the expert) gives each expert's
//          candidates in (probability desc, token asc) order — the CPU's stable_sort — and warp 0 runs the greedy:
//          each step every lane scans its experts' heads (e = lane + 32j) that still fit (spent + price <= budget;
//          once not, never again: spent only grows and a price only falls when the expert's own candidate is
//          added), a butterfly picks the best (ratio desc, token asc, expert asc; the CPU's scan order), and the
//          owner lane advances that expert's head (its next head's ratio w / b_e was precomputed per sorted
//          position; one position ahead is prefetched into registers so the global load overlaps the next step);
//       5. keep flags (floor slots and the kept prefix of each expert's candidates), rows compacted in place in slot
//          order, weights and counts recomputed (one thread per token).
//     Cost: O(T·K) parallel work plus a sequential floor sum of T·k_min terms and one warp step per added candidate
//     (a few hundred cycles each); fine for decode-size steps, milliseconds for thousands of candidates under a
//     binding budget.
// Launch: ceil(T/32) CTAs (at most 256) of 1024 threads; every CTA returns at once for the other policies.
#include <algorithm>
#include <climits>

#include "ops/cuda/moe_route_common.cuh"

namespace wattmoe::cuda {
namespace {

constexpr int kStepThreads = 1024;
constexpr int kStepWarps = kStepThreads / 32;
constexpr int kStepMaxBlocks = 256;
constexpr int kFloorChunk = 1024;
constexpr int kRadixBins = 256;

struct RadixSmem {
  int hist[kRadixBins];
  int base[kRadixBins];
  int wcnt[kStepWarps][kRadixBins];
  int single;  // every item fell into one bin
};
struct FloorSmem {
  double b[kFloorChunk];  // the chunk's floor terms in (token, slot) order
  double a[kFloorChunk];  // a_e at e's first floor pair, else 0
};
struct GreedySmem {  // per expert, owned by lane e % 32 of warp 0 during the loop
  double cur_r[kMaxExperts], nxt_r[kMaxExperts], price[kMaxExperts];
  int cur_t[kMaxExperts], nxt_t[kMaxExperts], head[kMaxExperts], end[kMaxExperts];
};
struct Pass2Smem {
  double pen[kMaxExperts];
  double mean;
  uint8_t sel[kStepWarps][kMaxExperts];
};
union StepSmem {
  RadixSmem r;
  FloorSmem f;
  GreedySmem g;
  Pass2Smem p;
};

__device__ __forceinline__ double d_inf() { return __longlong_as_double(0x7ff0000000000000ll); }

// Warp-inclusive scan of v.
__device__ __forceinline__ int warp_incl_scan(int v, int lane) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  return v;
}

// One stable counting pass of the block's LSD radix sort over n items (kin, pin) -> (kout, pout), digit = byte
// `shift` of the key, or the expert ids[p] when shift < 0. seg (optional, [kRadixBins + 1]) receives each digit's
// first output position and n at the end. Returns false, and moves nothing, when every item has the same digit.
__device__ bool radix_pass(int n, const uint32_t* kin, const int* pin, uint32_t* kout, int* pout, int shift,
                           const int* ids, RadixSmem& r, int* seg) {
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  __syncthreads();  // every thread is past the previous pass (its early return reads r.single)
  for (int i = tid; i < kRadixBins; i += kStepThreads) r.hist[i] = 0;
  for (int i = tid; i < kStepWarps * kRadixBins; i += kStepThreads) (&r.wcnt[0][0])[i] = 0;
  if (tid == 0) r.single = 0;
  __syncthreads();
  auto digit = [&](uint32_t k, int p) { return shift >= 0 ? int((k >> shift) & 255u) : ids[p]; };
  for (int i = tid; i < n; i += kStepThreads) atomicAdd(&r.hist[digit(kin[i], pin[i])], 1);
  __syncthreads();
  if (warp == 0) {  // exclusive scan of the 256 bins, 8 per lane
    int v[kRadixBins / 32], tot = 0;
#pragma unroll
    for (int j = 0; j < kRadixBins / 32; ++j) v[j] = r.hist[lane * (kRadixBins / 32) + j], tot += v[j];
    int run = warp_incl_scan(tot, lane) - tot;
#pragma unroll
    for (int j = 0; j < kRadixBins / 32; ++j) {
      const int d = lane * (kRadixBins / 32) + j;
      r.base[d] = run;
      if (seg) seg[d] = run;
      if (v[j] == n) r.single = 1;
      run += v[j];
    }
    if (seg && lane == 31) seg[kRadixBins] = run;
  }
  __syncthreads();
  if (r.single) return false;  // the same value on every thread (read after the barrier)
  const uint32_t lt_mask = (1u << lane) - 1u;
  for (int i0 = 0; i0 < n; i0 += kStepThreads) {
    const int i = i0 + tid;
    uint32_t k = 0;
    int p = 0, d = -1;
    if (i < n) k = kin[i], p = pin[i], d = digit(k, p);
    const uint32_t peers = __match_any_sync(0xffffffffu, d);
    const int rank = __popc(peers & lt_mask);
    if (d >= 0 && rank == 0) r.wcnt[warp][d] = __popc(peers);
    __syncthreads();
    if (d >= 0) {
      int pos = r.base[d] + rank;
      for (int w = 0; w < warp; ++w) pos += r.wcnt[w][d];
      kout[pos] = k;
      pout[pos] = p;
    }
    __syncthreads();
    for (int dd = tid; dd < kRadixBins; dd += kStepThreads) {
      int add = 0;
      for (int w = 0; w < kStepWarps; ++w) add += r.wcnt[w][dd], r.wcnt[w][dd] = 0;
      r.base[dd] += add;
    }
    __syncthreads();
  }
  return true;
}

// The budget policy of one layer-step, by CTA 0 (see the header comment).
__device__ void budget_cta(const RouteStepArgs& a, const RouteKnobs& kn, StepSmem& sm) {
  __shared__ float s_a[kMaxExperts], s_b[kMaxExperts];
  __shared__ int s_first[kMaxExperts];  // first floor pair (token-major index q) of each expert; INT_MAX: none
  __shared__ int s_hasc[kMaxExperts];   // the expert has a candidate
  __shared__ int s_seg[kRadixBins + 1];
  __shared__ int s_wtot[kStepWarps], s_wofs[kStepWarps], s_total;
  __shared__ double s_red[kStepWarps];
  __shared__ double s_spent;
  __shared__ int s_fast;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int T = a.T, E = a.E, S = a.slots, K = kn.K, kmin = kn.k_min;
  const double budget = a.policy->budget_j;
  int* ids = a.topk_ids;

  for (int e = tid; e < E; e += kStepThreads) {
    s_a[e] = a.policy->fixed[e], s_b[e] = a.policy->per_token[e];
    s_first[e] = INT_MAX, s_hasc[e] = 0;
  }
  __syncthreads();

  // 1. The floor, priced in the CPU's order.
  const int Q = T * kmin;
  for (int q = tid; q < Q; q += kStepThreads) {
    const int t = q / kmin, e = ids[size_t(t) * S + (q - t * kmin)];
    if (e >= 0) atomicMin(&s_first[e], q);
  }
  for (int p = tid; p < T * S; p += kStepThreads) a.keep[p] = (p % S < kmin && ids[p] >= 0) ? 1 : 0;
  __syncthreads();
  double spent = 0.0;  // thread 0's
  for (int q0 = 0; q0 < Q; q0 += kFloorChunk) {
    const int n = min(kFloorChunk, Q - q0);
    for (int i = tid; i < n; i += kStepThreads) {
      const int q = q0 + i, t = q / kmin, e = ids[size_t(t) * S + (q - t * kmin)];
      // A -1 slot (fewer unmasked experts than k_min) adds +0.0: spent + 0 == spent exactly (spent >= +0).
      sm.f.b[i] = e >= 0 ? double(s_b[e]) : 0.0;
      sm.f.a[i] = e >= 0 && s_first[e] == q ? double(s_a[e]) : 0.0;
    }
    __syncthreads();
    if (tid == 0)
#pragma unroll 4
      for (int i = 0; i < n; ++i) spent = __dadd_rn(__dadd_rn(spent, sm.f.b[i]), sm.f.a[i]);
    __syncthreads();
  }
  if (tid == 0) s_spent = spent;

  // 2. Candidates in (token, slot) order, and Σ b_e over them for the bound.
  const int C = K - kmin;
  const int M = T * C;
  uint32_t* key = a.cand_key[0];
  int* cp = a.cand_p[0];
  int N = 0;
  double rest = 0.0;
  const uint32_t lt_mask = (1u << lane) - 1u;
  for (int i0 = 0; i0 < M; i0 += kStepThreads) {
    const int i = i0 + tid;
    int p = 0, e = -1, t = 0;
    if (i < M) {
      t = i / C;
      p = t * S + kmin + (i - t * C);
      e = ids[p];
    }
    const bool valid = e >= 0;
    const uint32_t ballot = __ballot_sync(0xffffffffu, valid);
    if (lane == 0) s_wtot[warp] = __popc(ballot);
    __syncthreads();
    if (warp == 0) {
      const int v = s_wtot[lane], incl = warp_incl_scan(v, lane);
      s_wofs[lane] = incl - v;
      if (lane == 31) s_total = incl;
    }
    __syncthreads();
    if (valid) {
      const int pos = N + s_wofs[warp] + __popc(ballot & lt_mask);
      key[pos] = ~__float_as_uint(a.probs[size_t(t) * E + e]);
      cp[pos] = p;
      rest += double(s_b[e]);
      atomicOr(&s_hasc[e], 1);  // many candidates, one flag
    }
    N += s_total;
    __syncthreads();
  }

  // 3. The bound: Σ b over candidates + a of experts the candidates would activate, added to the floor's spent.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) rest += __shfl_xor_sync(0xffffffffu, rest, o);
  if (lane == 0) s_red[warp] = rest;
  __syncthreads();
  if (tid == 0) {
    double tot = 0.0;
    for (int w = 0; w < kStepWarps; ++w) tot += s_red[w];
    for (int e = 0; e < E; ++e)
      if (s_hasc[e] && s_first[e] == INT_MAX) tot += double(s_a[e]);
    const double bound = (s_spent + tot) * (1.0 + 0x1p-20);
    s_fast = bound <= budget;
  }
  __syncthreads();

  if (s_fast || N == 0) {
    for (int i = tid; i < N; i += kStepThreads) a.keep[cp[i]] = 1;
  } else {
    // 4a. Sort: (expert asc, probability desc, token asc).
    int cur = 0;
    for (int shift = 0; shift <= 24; shift += 8)
      if (radix_pass(N, a.cand_key[cur], a.cand_p[cur], a.cand_key[cur ^ 1], a.cand_p[cur ^ 1], shift, ids, sm.r,
                     nullptr))
        cur ^= 1;
    if (radix_pass(N, a.cand_key[cur], a.cand_p[cur], a.cand_key[cur ^ 1], a.cand_p[cur ^ 1], -1, ids, sm.r, s_seg))
      cur ^= 1;
    const int* sp = a.cand_p[cur];
    // Weight per joule at the active price of every sorted candidate, and its token.
    for (int i = tid; i < N; i += kStepThreads) {
      const int p = sp[i], t = p / S, e = ids[p];
      const double w = double(a.probs[size_t(t) * E + e]), b = double(s_b[e]);
      a.cand_ratio[i] = b > 0 ? __ddiv_rn(w, b) : d_inf();
      a.cand_tok[i] = t;
    }
    __syncthreads();
    // 4b. Heads.
    GreedySmem& g = sm.g;
    for (int e = tid; e < E; e += kStepThreads) {
      const int h = s_seg[e], end = s_seg[e + 1];
      const double b = double(s_b[e]);
      const double price = s_first[e] != INT_MAX ? b : __dadd_rn(b, double(s_a[e]));  // b + (active ? 0 : a)
      g.price[e] = price, g.head[e] = h, g.end[e] = end;
      if (h < end) {
        const int p = sp[h], t = p / S;
        const double w = double(a.probs[size_t(t) * E + e]);
        g.cur_r[e] = price > 0 ? __ddiv_rn(w, price) : d_inf();
        g.cur_t[e] = t;
      }
      if (h + 1 < end) g.nxt_r[e] = a.cand_ratio[h + 1], g.nxt_t[e] = a.cand_tok[h + 1];
    }
    __syncthreads();
    // 4c. The greedy, warp 0.
    if (warp == 0) {
      double sp_j = s_spent;
      int pf_e = -1, pf_t = 0;
      double pf_r = 0.0;
      for (;;) {
        if (pf_e >= 0) g.nxt_r[pf_e] = pf_r, g.nxt_t[pf_e] = pf_t, pf_e = -1;  // land last step's prefetch
        double br = 0.0, bp = 0.0;
        int bt = 0, be = E;  // E = none
        for (int e = lane; e < E; e += 32) {
          if (g.head[e] >= g.end[e]) continue;
          const double pr = g.price[e];
          if (!(__dadd_rn(sp_j, pr) <= budget)) continue;
          const double r = g.cur_r[e];
          const int tk = g.cur_t[e];
          if (be == E || r > br || (r == br && tk < bt)) br = r, bt = tk, be = e, bp = pr;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
          const double orr = __shfl_xor_sync(0xffffffffu, br, o), op = __shfl_xor_sync(0xffffffffu, bp, o);
          const int ot = __shfl_xor_sync(0xffffffffu, bt, o), oe = __shfl_xor_sync(0xffffffffu, be, o);
          if (oe != E && (be == E || orr > br || (orr == br && (ot < bt || (ot == bt && oe < be)))))
            br = orr, bp = op, bt = ot, be = oe;
        }
        be = __shfl_sync(0xffffffffu, be, 0);
        bp = __shfl_sync(0xffffffffu, bp, 0);
        if (be >= E) break;
        sp_j = __dadd_rn(sp_j, bp);
        if (lane == (be & 31)) {
          const int h = g.head[be] + 1;
          g.head[be] = h;
          g.price[be] = double(s_b[be]);  // active now
          if (h < g.end[be]) {
            g.cur_r[be] = g.nxt_r[be], g.cur_t[be] = g.nxt_t[be];
            if (h + 1 < g.end[be]) pf_r = a.cand_ratio[h + 1], pf_t = a.cand_tok[h + 1], pf_e = be;
          }
        }
      }
    }
    __syncthreads();
    // 5a. The kept prefix of each expert's candidates.
    for (int i = tid; i < N; i += kStepThreads) {
      const int p = sp[i];
      if (i < g.head[ids[p]]) a.keep[p] = 1;
    }
  }
  __syncthreads();

  // 5b. Rows compacted in slot order; weights as route_weights<float>; counts.
  for (int t = tid; t < T; t += kStepThreads) {
    int* row = ids + size_t(t) * S;
    const uint8_t* kp = a.keep + size_t(t) * S;
    const float* pr = a.probs + size_t(t) * E;
    int n = 0;
    for (int s = 0; s < S; ++s) {
      const int e = row[s];
      if (e >= 0 && kp[s]) row[n++] = e;
    }
    float wsum = 0.f;
    for (int s = 0; s < n; ++s) wsum += pr[row[s]];
    float* wr = a.topk_w + size_t(t) * S;
    for (int s = 0; s < S; ++s) {
      if (s < n) {
        const float p = pr[row[s]];
        wr[s] = a.renorm && wsum > 0.f ? p / wsum : p;
        atomicAdd(a.counts + row[s], 1);
      } else {
        row[s] = -1;
        wr[s] = 0.f;
      }
    }
  }
}

__global__ void __launch_bounds__(kStepThreads) route_step_kernel(RouteStepArgs a) {
  __shared__ StepSmem sm;
  const RouteKnobs kn = load_knobs(a.policy, a.E, a.k, a.slots);
  if (kn.policy == int(MoeRoute::Budget)) {
    if (blockIdx.x == 0) budget_cta(a, kn, sm);
    return;
  }
  if (!step_policy(kn)) return;
  // cost's second pass: re-priced penalties, then every token again.
  cost_penalties(a.policy, a.E, a.T, kn.lambda, a.counts1, kn.reuse, sm.p.pen, &sm.p.mean);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int t = blockIdx.x * kStepWarps + warp; t < a.T; t += gridDim.x * kStepWarps) {
    const bf16* lg = a.logits + size_t(t) * a.E;
    const float* pr = a.probs + size_t(t) * a.E;
    const double* pen = sm.p.pen;
    const int cnt = warp_rank<double>(
        a.E, kn.K, kn.mask, [&](int e) { return __dsub_rn(double(__bfloat162float(lg[e])), pen[e]); }, lane,
        sm.p.sel[warp]);
    finish_row(kn, t, a.slots, a.renorm, sm.p.sel[warp], cnt, [&](int e) { return pr[e]; }, a.topk_ids, a.topk_w,
               a.counts, lane);
  }
}

}  // namespace

void launch_route_step(const RouteStepArgs& a, cudaStream_t s) {
  const int blocks = std::min((a.T + kStepWarps - 1) / kStepWarps, kStepMaxBlocks);
  route_step_kernel<<<blocks, kStepThreads, 0, s>>>(a);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda
