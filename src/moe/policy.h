// Routing policies: which experts each token of one MoE layer uses, given the router logits and probabilities
// [n, E], the layer's expert costs and the Controller's knobs. Every policy fills the same Routing (selection only;
// the model derives weights from the selected experts' router probabilities), so dispatch is shared.
//
// Cost model (docs/ARCHITECTURE.md, "What an expert costs"): one layer's energy for one step is
//   Σ_{experts e activated in the step} a_e  +  Σ_{(token, expert) pairs} b_e
// a_e (ExpertCosts::fixed) is paid once per step if any token uses e (weights read, launches); b_e
// (ExpertCosts::per_token) is the marginal cost of one (token, expert) pair. moe/ knows no sensor: the costs arrive
// as plain vectors in joules (core/expert_costs.h: ExpertCosts, validate_costs, per_token_cost) from whoever
// measured them.
//
// Slots: Routing::k is the largest number of experts any token may take, K = knobs.k_max (or the model's k when
// k_max = 0). Each token's experts are in descending router-probability order (descending score for `cost`), and
// unused slots are -1 at the end of the row. Ties always break toward the lower expert index.
//
// Policies (make_policy(name)):
//   topk    the K experts of highest probability (with default knobs: the model's own top-k, bit for bit).
//   cost    the K experts of highest logit_e − λ·c̃_e, where c̃_e = (a_e/n + b_e) / mean_{e'}(a_e'/n + b_e') is the
//           per-token share of e's step cost normalised by its mean over all E experts (so λ is in logit units and
//           independent of the joule scale; all-zero costs give c̃ = 0). λ = 0 ranks by probability, i.e. equals
//           topk exactly. Step-aware option (knobs.reuse_min_tokens = m > 0): a second pass re-prices a_e to 0 for
//           every expert that ≥ m tokens chose in the first pass (its fixed cost is paid anyway), keeping the
//           first pass's normaliser, and selects again — tokens drift toward experts already active in the step.
//   top_p   per token, the fewest experts in descending probability whose cumulative probability reaches p,
//           clamped to [k_min, K]. p = 1 with k_min = K takes exactly K (= topk).
//   skip    topk, then drop every slot s ≥ k_min whose probability is below β × the first slot's probability
//           (slot 0 is never dropped). β = 0 equals topk.
//   budget  per layer-step: every token first takes its top-k_min experts (the floor, paid whatever the budget);
//           then the remaining candidates among each token's top-K are added greedily by weight per joule,
//           weight = p(e|token), price = b_e + (a_e if e is not yet activated in this step, else 0), best ratio
//           first (ties: lower token, then lower expert), each only if it fits in what is left of budget_j; stops
//           when nothing fits. Infinite budget equals topk at K; zero budget gives exactly each token's top-k_min.
//           Energy ≤ budget_j unless the floor alone exceeds it, and energy never increases when budget_j shrinks.
//   mask    topk over the experts the mask leaves (pruned experts count as −inf); with fewer than K left, all of
//           them. Every policy honours knobs.mask — a pruned expert is never selected by any policy — so `mask`
//           is topk under the name the Controller's degradation ladder uses.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/expert_costs.h"
#include "moe/routing.h"

namespace wattmoe {

// The Controller's knobs. Each policy reads the ones its description above names; all are validated every call.
struct PolicyKnobs {
  float lambda = 0.f;                                        // cost: price weight, ≥ 0
  float p = 1.f;                                             // top_p: cumulative probability, in (0, 1]
  int k_min = 1;                                             // top_p/skip/budget: fewest experts per token, ≥ 1
  int k_max = 0;                                             // slots K, 1..E; 0 = the model's k
  float beta = 0.f;                                          // skip: relative probability threshold, in [0, 1]
  double budget_j = std::numeric_limits<double>::infinity(); // budget: joules for this layer's step, ≥ 0
  std::vector<bool> mask;                                    // [E], true = pruned; empty = none pruned
  int reuse_min_tokens = 0;                                  // cost: step-aware second pass threshold m; 0 = off
};

// Throws wattmoe::Error naming the knob and its valid range. model_k is the model's top-k (1..E).
void validate_knobs(const PolicyKnobs& knobs, int E, int model_k);
// K: knobs.k_max, or model_k when k_max = 0.
int resolved_k_max(const PolicyKnobs& knobs, int model_k);

// Why each expert of each token was or was not selected (`wattmoe explain`): one reason per (token, expert), written
// by the policy's own decision code as it decides (RoutingPolicy::select_traced), so it cannot drift from the
// selection. There is no precision tier in the engine (every expert runs at the model's precision), so none is a
// reason.
enum class RouteReason : uint8_t {
  kSelected = 0,  // in the token's selection by the policy's rule
  kFloor,         // selected only because of k_min: the rule (top-p mass, β, budget) would have dropped it
  kMask,          // pruned by knobs.mask (every policy honours it)
  kSlots,         // ranked below the K = k_max slots (by probability; by score for `cost`)
  kBeta,          // skip: probability below β × the first slot's
  kTopP,          // top_p: the cumulative probability of the experts before it had reached p
  kBudget,        // budget: its price did not fit in what was left of budget_j
  kCost,          // cost: among the K most probable, but ranked out by its price λ·c̃
};
const char* route_reason_name(RouteReason r);  // "selected", "k_min floor", "mask", "k_max", "beta", "top_p", ...

struct RoutingTrace {
  int64_t tokens = 0;
  int experts = 0;
  std::vector<RouteReason> reason;  // [tokens, experts]
  void reset(int64_t n, int E);
  RouteReason at(int64_t t, int e) const { return reason[size_t(t * experts + e)]; }
};

class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  virtual std::string name() const = 0;
  // logits, probs: [n, E] row-major (probs = softmax(logits)); fills out with K = resolved_k_max slots per token.
  // Throws wattmoe::Error on bad knobs or costs, or a NaN in logits/probs.
  virtual void select(const float* logits, const float* probs, int64_t n, int E, int model_k, const ExpertCosts& costs,
                      const PolicyKnobs& knobs, Routing& out) const = 0;
  // Same decisions computed on double inputs (the gradient-check model); no conversion to float.
  virtual void select(const double* logits, const double* probs, int64_t n, int E, int model_k,
                      const ExpertCosts& costs, const PolicyKnobs& knobs, Routing& out) const = 0;
  // select, and the reason for every (token, expert) in trace: the same decision code with a recorder attached, so
  // out is exactly what select gives.
  virtual void select_traced(const float* logits, const float* probs, int64_t n, int E, int model_k,
                             const ExpertCosts& costs, const PolicyKnobs& knobs, Routing& out,
                             RoutingTrace& trace) const = 0;
};

// names: topk, cost, top_p, skip, budget, mask. Unknown name → Error listing them.
std::unique_ptr<RoutingPolicy> make_policy(const std::string& name);
const std::vector<std::string>& policy_names();

// Σ_{activated e} a_e + Σ_{pairs} b_e of one layer-step (joules). Costs must have r.experts entries.
double routing_energy(const Routing& r, const ExpertCosts& costs);

// Differentiable surrogate of the layer-step energy: Σ_t Σ_e p(e|t) · c_e with c_e = per_token_cost(costs, n)
// (core/expert_costs.h), i.e.
// the expected cost of one expert draw per token (multiply by k for k draws). ∂/∂p(e|t) = c_e.
template <class T>
double expected_expert_energy(const T* probs, int64_t n, int E, const ExpertCosts& costs);

}  // namespace wattmoe
