// `wattmoe explain`'s library part: which experts each token of a short text takes in every MoE layer, with their
// router probabilities and costs, and why each of the others was dropped — by the policy's own decision code.
// One forward of the text (batch 1) on a runner with the routing set; then, per MoE layer, the policy's traced
// selection (moe/policy.h RoutingPolicy::select_traced) on that forward's router outputs with the layer's knobs and
// costs. The traced selection must equal the routing the forward used (checked: an error if not), so the reasons are
// those of the run, not of a second copy of the rules. The CPU runner is the reference it is written against.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/runner.h"
#include "moe/policy.h"
#include "text/tokenizer.h"

namespace wattmoe {

struct ExplainedExpert {
  int expert = 0;
  float prob = 0;       // router probability p(e | token)
  double cost_j = 0;    // per-token share of the expert's step cost: a_e / n + b_e (core/expert_costs.h), joules
  RouteReason reason = RouteReason::kSelected;
  bool selected() const { return reason == RouteReason::kSelected || reason == RouteReason::kFloor; }
};

struct ExplainedLayer {
  int layer = 0;
  std::vector<std::vector<ExplainedExpert>> tokens;  // [T][E], each token's experts by descending probability
  double step_energy_j = 0;                          // routing_energy of the layer-step (moe/policy.h)
};

struct Explanation {
  std::vector<int32_t> ids;
  int experts = 0, model_k = 0;
  std::vector<ExplainedLayer> layers;  // MoE layers only, in order
};

// ids: 1 ≤ size ≤ the model's context (Error naming it otherwise). The routing must be what `run` has been set to.
Explanation explain_routing(Runner& run, const std::vector<int32_t>& ids, const RoutingSetup& routing);

// {"routing": …, "tokens": [{"pos", "id", "text"}], "layers": [{"layer", "step_energy_j", "tokens": [[{"expert",
// "prob", "cost_j", "selected", "reason"}…]…]}]} — reasons as route_reason_name spells them.
Json explanation_json(const Explanation& x, const RoutingSetup& routing, const Tokenizer& tok);

}  // namespace wattmoe
