// Adapts a RoutingPolicy, per-layer expert costs and knobs into the model's router-selection callback. The callback
// type is spelled out here with the same signature as model/transformer.h's RouterSelect<T> (moe/ does not depend on
// model/), so the result converts to it directly.
//
// layer_costs: one ExpertCosts per model layer index (the callback's `layer`), or exactly one that every layer uses,
// or none (only for policies that do not price experts: topk, top_p, skip, mask). A layer index not covered throws.
// The knobs are copied and apply to every layer (budget_j is per layer-step); when the Controller moves a knob,
// build a new callback — it only copies the knobs and the cost vectors.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "moe/policy.h"
#include "moe/routing.h"
#include "moe/routing_spec.h"

namespace wattmoe {

template <class T>
using PolicySelectFn = std::function<void(int layer, const T* logits, const T* probs, int64_t n, Routing& out)>;

template <class T>
PolicySelectFn<T> make_policy_select(std::shared_ptr<const RoutingPolicy> policy, int num_experts, int model_k,
                                     std::vector<ExpertCosts> layer_costs, PolicyKnobs knobs) {
  WATTMOE_REQUIRE(policy != nullptr, "make_policy_select: no routing policy given");
  validate_knobs(knobs, num_experts, model_k);  // fail at setup, not in the middle of a forward pass
  for (const ExpertCosts& c : layer_costs) validate_costs(c, num_experts, false);
  return [policy = std::move(policy), E = num_experts, model_k, costs = std::move(layer_costs),
          knobs = std::move(knobs)](int layer, const T* logits, const T* probs, int64_t n, Routing& out) {
    static const ExpertCosts none;
    const ExpertCosts* c = &none;
    if (costs.size() == 1) {
      c = &costs[0];
    } else if (!costs.empty()) {
      WATTMOE_REQUIRE(layer >= 0 && size_t(layer) < costs.size(),
                      "policy '{}': no expert costs for layer {} (costs given for {} layers)", policy->name(), layer,
                      costs.size());
      c = &costs[size_t(layer)];
    }
    policy->select(logits, probs, n, E, model_k, *c, knobs, out);
  };
}

}  // namespace wattmoe

namespace wattmoe {

// What the routing decisions of a run cost by the expert cost vectors (joules by routing_energy per layer-step), so
// an evaluation reports expected expert energy per token beside quality. Not thread-safe: one forward at a time.
struct RoutingEnergyTally {
  std::vector<double> joules;    // per layer
  std::vector<int64_t> tokens;   // tokens routed per layer (a token counts once per layer)
  std::vector<int64_t> pairs;    // (token, expert) pairs per layer
  // Adds one layer-step: its routing r priced with the layer's costs c (routing_energy), its tokens and pairs.
  void add(int layer, const Routing& r, const ExpertCosts& c);
  double total_joules() const;
  // Σ_layers joules / tokens of one layer: the expected expert energy of one token through the whole model.
  double joules_per_token() const;
  double experts_per_token() const;  // mean over the layers that routed anything
};

// The observer (moe/routing_spec.h RoutingObserver, which a runner calls after each forward whichever kernels routed)
// that prices routing into `tally`: each layer-step by routing_energy with layer_costs[layer] (one per
// model layer, or one for all), each expert's fixed cost a_e scaled by fixed_share — the share of a step's a_e the
// tallied tokens carry: 1 when a forward pass is the whole step, 1/streams when each window stands for `streams`
// windows routed alike in one step (wattmoe run). The only place that scaling is done. Error without a tally or
// costs.
RoutingObserver tally_observer(std::vector<ExpertCosts> layer_costs, double fixed_share,
                               std::shared_ptr<RoutingEnergyTally> tally);

}  // namespace wattmoe
