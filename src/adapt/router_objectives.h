// Test-time objectives on the routers of one window's forward pass. They read each MoE layer's router logits and
// probabilities [N, E] through moe/router_view.h and ADD weight × ∂(value)/∂router_logits into the view's drouter
// [N, E] — the router-logit gradient the model's backward already carries (zeroed by every forward). Dense layers
// (no router) are skipped; values are means over the MoE layers.
//
//   expected_expert_energy  Σ_e p(e|t)·c̃_e averaged over tokens t and MoE layers, with c̃ = the caller's per-token
//                           expert costs of that layer normalised to mean 1 over experts (all-zero costs → c̃ = 0:
//                           nothing to save). Gradient through the router softmax:
//                           ∂/∂logit_j = p_j·(c̃_j − Σ_e p_e·c̃_e), / (N · MoE layers).
//   router_entropy          the entropy (nats) of each token's router distribution, averaged over tokens and MoE
//                           layers; ∂H/∂logit_j = −p_j·(log p_j + H). Sharper routing lets top_p/skip policies select
//                           fewer experts, so this is the energy surrogate when all experts cost the same.
// The load-balancing and z losses are moe/aux_losses.h.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/policy.h"
#include "moe/router_view.h"

namespace wattmoe {

// Per-token expert costs [layer][E], any non-negative unit (only ratios matter): one row per model layer, or one
// row every layer shares. Rows of dense layers are ignored.
using LayerCosts = std::vector<std::vector<double>>;

// Error unless costs has one row per layer (num_layers) or exactly one row, each with E finite values ≥ 0.
void validate_layer_costs(const LayerCosts& costs, int num_layers, int E);

// c_e = a_e / n + b_e of each layer's ExpertCosts at n tokens per step (moe/policy.h per_token_cost).
LayerCosts layer_costs_from(const std::vector<ExpertCosts>& costs, int64_t n);

template <class T>
double expected_expert_energy(const RouterViews<T>& v, const LayerCosts& costs, double weight);

template <class T>
double router_entropy(const RouterViews<T>& v, double weight);

}  // namespace wattmoe
