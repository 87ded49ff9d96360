// RoutingSpec: what a model routes with, as plain data — a policy of moe/policy.h, its knobs (per layer when the
// controller's ladder masks experts layer by layer) and the expert costs the cost-aware policies price. Runners take
// it instead of a callback (model/runner.h): the host paths turn it into a selection function (spec_select), the
// fused GPU kernels into knobs in device memory.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moe/policy.h"
#include "moe/routing.h"

namespace wattmoe {

struct RoutingSpec {
  std::string policy = "topk";
  PolicyKnobs knobs;                     // every layer, unless layer_knobs is given
  std::vector<PolicyKnobs> layer_knobs;  // one per model layer (replaces knobs), or empty
  std::vector<ExpertCosts> costs;        // one per model layer, or one for all, or none (policies that do not price)
  const PolicyKnobs& knobs_for(int layer) const { return layer_knobs.empty() ? knobs : layer_knobs.at(size_t(layer)); }
};

// Error naming the policy, knob or cost table that does not fit a model of num_layers layers, E experts, top-k k.
void validate_routing_spec(const RoutingSpec& s, int num_layers, int E, int model_k);

// True when the spec selects exactly the model's own top-k (topk with no mask and K = the model's k in every layer).
bool is_model_topk(const RoutingSpec& s, int model_k);

// The selection a host-routing forward calls per MoE layer (same signature as model/transformer.h's RouterSelect):
// null for the model's own top-k (is_model_topk), else the policy with that layer's knobs and costs.
using SpecSelectFn = std::function<void(int layer, const float* logits, const float* probs, int64_t n, Routing& out)>;
SpecSelectFn spec_select(const RoutingSpec& s, int num_layers, int E, int model_k);

// Sees each MoE layer's routing after a forward (layers in order), whichever kernels routed it.
using RoutingObserver = std::function<void(int layer, const Routing& r)>;

}  // namespace wattmoe
