// Routing decided on the device (the fused MoE kernels, gpu/transformer_cuda.h) reaches whoever prices or counts it
// through an observer called after each forward, once per MoE layer, with that layer's routing — where a host-side
// RouterSelect wrapped by tally_routing_energy (moe/policy_select.h) would have priced it inside the forward.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "gpu/transformer_cuda.h"
#include "moe/policy.h"
#include "moe/policy_select.h"
#include "moe/routing.h"

namespace wattmoe::gpu {

using RoutingObserver = std::function<void(int layer, const Routing& r)>;

// Calls observe(l, model.routing(l).routing) for every MoE layer of the last forward (in layer order).
template <class T>
void observe_routing(const TransformerCudaT<T>& model, const RoutingObserver& observe) {
  for (int l = 0; l < model.config().num_layers; ++l)
    if (model.config().is_moe_layer(l)) observe(l, model.routing(l).routing);
}

// The bookkeeping of tally_routing_energy for routing it did not select: each layer-step priced by routing_energy
// with layer_costs[layer] (one per model layer, or one for all), each expert's fixed cost a_e scaled by fixed_share
// (RoutingSetup::tally_fixed_share), added to tally's joules, tokens and pairs.
inline RoutingObserver tally_observer(std::vector<ExpertCosts> layer_costs, double fixed_share,
                                      std::shared_ptr<RoutingEnergyTally> tally) {
  for (ExpertCosts& c : layer_costs)
    for (float& a : c.fixed) a = float(a * fixed_share);
  return [costs = std::move(layer_costs), tally](int layer, const Routing& r) {
    tally->add(layer, r, costs.size() == 1 ? costs[0] : costs.at(size_t(layer)));
  };
}

}  // namespace wattmoe::gpu
