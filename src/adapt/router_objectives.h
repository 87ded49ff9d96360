// Test-time objectives on the routers of one window's forward pass. They read each MoE layer's router logits and
// probabilities [N, E] through moe/router_view.h and ADD weight × ∂(value)/∂router_logits into the view's drouter
// [N, E] — the router-logit gradient the model's backward already carries (zeroed by every forward). Dense layers
// (no router) are skipped; values are means over the MoE layers.
//
//   expected_expert_energy  Σ_e p(e|t)·c̃_e averaged over tokens t and MoE layers, with c̃ = that layer's per-token
//                           expert costs c_e = a_e / n + b_e (core/expert_costs.h per_token_cost of the layer's
//                           ExpertCosts at n = tokens per step) normalised to mean 1 over experts (all-zero costs →
//                           c̃ = 0: nothing to save). Gradient through the router softmax:
//                           ∂/∂logit_j = p_j·(c̃_j − Σ_e p_e·c̃_e), / (N · MoE layers).
//   router_entropy          the entropy (nats) of each token's router distribution, averaged over tokens and MoE
//                           layers; ∂H/∂logit_j = −p_j·(log p_j + H). Sharper routing lets top_p/skip policies select
//                           fewer experts, so this is the energy surrogate when all experts cost the same.
// The load-balancing and z losses are moe/aux_losses.h.
#pragma once
#include <cstdint>
#include <vector>

#include "core/expert_costs.h"
#include "moe/router_view.h"

namespace wattmoe {

// What the energy objective prices routing with: each layer's ExpertCosts as energy/ produced them — one per model
// layer (index = layer), or one every layer shares; entries of dense layers are ignored — at tokens_per_step tokens
// per step (n ≥ 1 in per_token_cost). Only ratios between experts matter.
struct EnergyCosts {
  std::vector<ExpertCosts> layers;
  int64_t tokens_per_step = 1;
  bool empty() const { return layers.empty(); }
};

// Error unless costs has one entry per layer (num_layers) or exactly one, each with E finite fixed and per-token
// costs ≥ 0, and tokens_per_step ≥ 1.
void validate_energy_costs(const EnergyCosts& costs, int num_layers, int E);

template <class T>
double expected_expert_energy(const RouterViews<T>& v, const EnergyCosts& costs, double weight);

template <class T>
double router_entropy(const RouterViews<T>& v, double weight);

}  // namespace wattmoe
