// The routing policy of the fused MoE layer (ops/moe_cuda.h) as one plain block of knobs that the route kernels
// read from DEVICE memory at every launch, so the knobs change without recompiling, re-capturing a CUDA graph or
// synchronising: write new values into the block (MoeLayerCuda::set_route_policy, or a cudaMemcpyAsync into a block
// the caller owns) and the next forward or graph replay follows them.
//
// Semantics are those of the CPU policies (moe/policy.h, the reference; this header repeats only what the block
// holds): policy topk | cost | top_p | skip | budget | mask, K = k_max (or the model's k when k_max = 0) slots per
// token, k_min, λ (cost), p (top_p), β (skip), budget_j (budget, joules per layer-step), reuse_min_tokens (cost's
// step-aware second pass), a mask of pruned experts that every policy honours, and the expert costs a_e (fixed, per
// step if the expert is activated) and b_e (per_token, per (token, expert) pair) in joules. ops/ knows no PolicyKnobs
// (moe/ sits above ops/): whoever owns the knobs fills this block field by field (tests/ops/moe_route_policy_util.h
// converts PolicyKnobs + ExpertCosts, ops/moe_route_policy_check.h validates with errors naming the knob).
//
// Plain old data: no constructor, no pointer, the same layout for the host compiler and nvcc, copied byte for byte.
// This header includes no CUDA and no fmt header, so kernels, the benchmark and CPU-only code all include it.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

namespace wattmoe {

constexpr int kMoeRouteMaxExperts = 256;  // the fused kernels' expert limit (cuda::kMaxExperts)

enum class MoeRoute : int32_t { TopK = 0, Cost = 1, TopP = 2, Skip = 3, Budget = 4, Mask = 5 };
constexpr int kMoeRouteCount = 6;

struct MoeRoutePolicy {
  MoeRoute policy = MoeRoute::TopK;
  int32_t k_max = 0;             // K slots per token, 1..min(E, the layer's slot capacity); 0 = the model's k
  int32_t k_min = 1;             // top_p / skip / budget: fewest experts per token, 1..K
  int32_t reuse_min_tokens = 0;  // cost: step-aware second pass threshold m (0 = off)
  float lambda = 0.f;            // cost: price weight, finite, >= 0 (0 = rank by probability = topk)
  float p = 1.f;                 // top_p: cumulative probability, in (0, 1]
  float beta = 0.f;              // skip: relative probability threshold, in [0, 1]
  int32_t cost_experts = 0;      // entries of fixed / per_token that hold costs: 0 (none) or E
  double budget_j = std::numeric_limits<double>::infinity();  // budget: joules per layer-step, >= 0 (inf = none)
  uint32_t mask[kMoeRouteMaxExperts / 32] = {};  // bit (e % 32) of word e / 32 set: expert e is pruned
  float fixed[kMoeRouteMaxExperts] = {};         // a_e, joules per step if e is activated (first cost_experts used)
  float per_token[kMoeRouteMaxExperts] = {};     // b_e, joules per (token, expert) pair
};
static_assert(std::is_trivially_copyable_v<MoeRoutePolicy> && std::is_standard_layout_v<MoeRoutePolicy>);
static_assert(sizeof(MoeRoutePolicy) == 2120, "MoeRoutePolicy layout changed: the kernels read it field by field");

// The CPU policy names (moe/policy.h: make_policy), in MoeRoute order.
inline const char* moe_route_name(MoeRoute r) {
  static constexpr const char* names[kMoeRouteCount] = {"topk", "cost", "top_p", "skip", "budget", "mask"};
  const int i = int(r);
  return i >= 0 && i < kMoeRouteCount ? names[i] : "?";
}
// name -> policy; false when the name is none of moe_route_name's (no exception: the benchmark, built by nvcc, uses
// it; ops/moe_route_policy_check.h has the throwing parse_moe_route).
inline bool moe_route_from_name(std::string_view name, MoeRoute& out) {
  for (int i = 0; i < kMoeRouteCount; ++i)
    if (name == moe_route_name(MoeRoute(i))) {
      out = MoeRoute(i);
      return true;
    }
  return false;
}

inline bool moe_route_pruned(const MoeRoutePolicy& p, int e) { return (p.mask[e >> 5] >> (e & 31)) & 1u; }
inline void moe_route_set_pruned(MoeRoutePolicy& p, int e, bool pruned) {
  const uint32_t bit = 1u << (e & 31);
  p.mask[e >> 5] = pruned ? (p.mask[e >> 5] | bit) : (p.mask[e >> 5] & ~bit);
}

}  // namespace wattmoe
