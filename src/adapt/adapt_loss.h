// The weighted test-time objective of one window, on a forward pass's activations:
//   L = w_nll·NLL + w_ent·gated entropy + w_energy·E[expert cost] + w_rent·router entropy
//       + w_lb·load balance + w_z·z-loss                                   (+ w_anchor·½‖θ−θ₀‖², added by the caller)
// (adapt/token_objectives.h, adapt/router_objectives.h, Transformer::router_aux_losses, adapt/anchor.h).
// adapt_loss OVERWRITES dlogits [B·S, V] with ∂L/∂logits and each MoE layer's acts.drouter with ∂L/∂router_logits
// (zeroed first, so a reused forward never carries an old step's terms); Transformer::backward then takes both.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapt/router_objectives.h"
#include "model/transformer.h"

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

// targets [B·S] (the window's next tokens; < 0 skips a row). costs: needed when w.energy > 0.
template <class T>
LossComponents adapt_loss(const Transformer<T>& model, Activations<T>& acts, const int32_t* targets,
                          const ObjectiveWeights& w, const EnergyCosts* costs, std::vector<T>& dlogits);

}  // namespace wattmoe
