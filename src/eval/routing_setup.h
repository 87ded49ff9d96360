// The routing a run or an evaluation asks for, from plain options: the policy and its knobs (moe/policy.h), and what
// the experts cost — `costs` "analytic" (FLOPs and bytes on the default H100-like hardware coefficients, for the
// model's own expert shape or, with expert_shape "HxI", as if every expert had that shape, e.g. 4096x14336, a Mixtral
// expert: the shipped model is tiny, so its own experts cost almost nothing and everything is launch overhead), or a
// profiled cost table (wattmoe profile). The costs of one layer-step are taken at `tokens_per_step` tokens (fixed
// activation cost a_e and marginal b_e, see moe/policy.h). Errors name the option as the command line spells it.
#pragma once
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "energy/cost_model.h"
#include "io/json.h"
#include "model/config.h"
#include "moe/policy.h"
#include "moe/policy_select.h"
#include "moe/routing_spec.h"

namespace wattmoe {

struct RoutingOptions {
  std::string policy = "topk";
  float lambda = 0.f, top_p = 1.f, beta = 0.f;
  int k_min = 1, k_max = 0, reuse_min_tokens = 0;
  double budget_j = std::numeric_limits<double>::infinity();
  std::string mask;                // comma-separated expert ids pruned in every layer
  // Static pruning by calibration use (Lu et al. 2024): in every MoE layer, the prune_least_used experts the
  // calibration used least (eval/policy_points.h least_used_experts) are masked too. calibration: a `wattmoe eval`
  // JSON whose "expert_counts" has one count per expert for every MoE layer.
  int prune_least_used = 0;
  std::string calibration;
  std::string costs = "analytic";  // or a cost table JSON
  std::string expert_shape;        // HxI for the analytic costs; empty: the model's own
};

struct RoutingSetup {
  std::shared_ptr<const RoutingPolicy> policy;
  PolicyKnobs knobs;
  std::vector<std::vector<bool>> layer_masks;  // [layers][E]: knobs.mask and the pruned experts; empty = none
  int pruned = 0;                              // prune_least_used
  std::string calibration;
  std::shared_ptr<const CostModel> cost_model;
  std::vector<ExpertCosts> layer_costs;  // one per model layer (dense layers get zeros)
  int num_experts = 0, model_k = 0;
  // Share of an expert's fixed step cost a_e charged to the tokens the tally sees: 1 when a forward pass is the
  // whole step; 1/streams when each window stands for `streams` windows routed alike in one step (wattmoe run).
  double tally_fixed_share = 1.0;
  // The routing a runner takes (moe/routing_spec.h): this policy, these knobs (one per layer with layer_masks), the
  // layer costs.
  RoutingSpec spec() const;
  // The observer that prices each layer-step's routing into `tally` (fixed costs scaled by tally_fixed_share).
  RoutingObserver observer(std::shared_ptr<RoutingEnergyTally> tally) const;
  Json describe() const;
};

// Validates every option (unknown policy, bad knob, unreadable cost table, shape) with an error naming the flag.
// expert_precision: the runner's expert tier (--expert-precision), which sets the analytic costs' weight bytes.
RoutingSetup make_routing(const RoutingOptions& a, const ModelConfig& c, double tokens_per_step,
                          const std::string& expert_precision = "bf16");

Json knobs_json(const PolicyKnobs& k);
// A policy and the knob that moves it, as a person reads it: "topk k=2", "skip beta=0.43", "top_p p=0.90",
// "cost lambda=1.2", "budget 0.5 J/layer-step"; "+ N masked" when experts are pruned.
std::string policy_text(const std::string& policy, const PolicyKnobs& k, int model_k);

// The small grammars of the routing flags (fuzzed: fuzz/flags_fuzz.cpp). Errors name the flag.
std::vector<bool> parse_mask(const std::string& s, int num_experts);  // --mask "3,5"; empty: no mask
constexpr int64_t kMaxExpertDim = 1 << 20;
std::pair<int64_t, int64_t> parse_expert_shape(const std::string& s);  // --expert-shape "4096x14336"

}  // namespace wattmoe
