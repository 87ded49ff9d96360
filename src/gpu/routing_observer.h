// Routing decided on the device (the fused MoE kernels, gpu/transformer_cuda.h) reaches whoever prices or counts it
// through an observer (moe/policy_select.h RoutingObserver) called after each forward, once per MoE layer, with that
// layer's routing — the same observer a host-side RouterSelect wrapped by observe_selection calls inside the forward.
// Pricing is moe/'s tally_observer, named here as gpu::tally_observer too.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "gpu/transformer_cuda.h"
#include "moe/policy.h"
#include "moe/policy_select.h"
#include "moe/routing.h"

namespace wattmoe::gpu {

using wattmoe::RoutingObserver;
using wattmoe::tally_observer;

// Calls observe(l, model.routing(l).routing) for every MoE layer of the last forward (in layer order).
template <class T>
void observe_routing(const TransformerCudaT<T>& model, const RoutingObserver& observe) {
  for (int l = 0; l < model.config().num_layers; ++l)
    if (model.config().is_moe_layer(l)) observe(l, model.routing(l).routing);
}

}  // namespace wattmoe::gpu
