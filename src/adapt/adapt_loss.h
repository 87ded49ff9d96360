// The weighted test-time objective of one window, on a forward pass's activations:
//   L = w_nll·NLL + w_ent·gated entropy + w_energy·E[expert cost] + w_rent·router entropy
//       + w_lb·load balance + w_z·z-loss                                   (+ w_anchor·½‖θ−θ₀‖², added by the caller)
// (ops/token_objectives.h, adapt/router_objectives.h, moe/aux_losses.h, adapt/anchor.h). The maths is written once
// over host views (adapt_loss_terms); adapt_loss applies it to whatever device a runner runs on.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapt/router_objectives.h"
#include "model/runner.h"
#include "moe/router_view.h"

namespace wattmoe {

struct ObjectiveWeights {
  double nll = 1.0;            // next-token NLL on revealed tokens
  double entropy = 0;          // TENT/EATA gated entropy of the next-token distribution
  double energy = 0;           // expected expert energy (needs expert costs: EnergyCosts)
  double router_entropy = 0;   // router distribution entropy
  double load_balance = 0, z = 0;
  double anchor = 0;           // L2 pull toward the source weights
  std::optional<double> entropy_gate;  // nats, > 0; unset = 0.4·ln V
};
// Error naming the weight: each finite and ≥ 0, at least one non-zero, entropy_gate (if set) finite and > 0.
void validate_objective_weights(const ObjectiveWeights& w);

struct LossComponents {  // unweighted values; total = Σ weight × value
  double nll = 0, entropy = 0, entropy_kept = 0, energy = 0, router_entropy = 0, load_balance = 0, z = 0, anchor = 0;
  double total = 0;
};

// The objective on host views: logits [N, V] (null when no token objective is asked for: nll and entropy weights 0)
// and each MoE layer's router outputs. OVERWRITES dlogits (resized to N·V when logits are given) and every view's
// drouter (zeroed first, so a reused forward never carries an old step's terms) with the gradients. targets [N]
// (< 0 skips a row); costs: needed when w.energy > 0. Any T (double for gradient checks).
template <class T>
LossComponents adapt_loss_terms(const T* logits, int64_t N, int64_t V, const RouterViews<T>& router,
                                const int32_t* targets, const ObjectiveWeights& w, const EnergyCosts* costs,
                                std::vector<T>& dlogits);

// The objective over a runner's last forward (model/runner.h), leaving its gradient seeds in the runner for the next
// backward: the router terms on the host views; the token terms on the host when the runner keeps its logits there or
// the entropy objective needs them (then ∂L/∂logits goes up), else the next-token loss where the logits are (no
// [N, V] array crosses the bus).
LossComponents adapt_loss(Runner& run, const int32_t* targets, const ObjectiveWeights& w, const EnergyCosts* costs);

}  // namespace wattmoe
