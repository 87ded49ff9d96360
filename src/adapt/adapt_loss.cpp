#include "adapt/adapt_loss.h"

#include <algorithm>
#include <cmath>

#include "adapt/token_objectives.h"
#include "core/error.h"

namespace wattmoe {

void validate_objective_weights(const ObjectiveWeights& w) {
  const std::pair<const char*, double> all[] = {{"nll", w.nll},       {"entropy", w.entropy},
                                                {"energy", w.energy}, {"router_entropy", w.router_entropy},
                                                {"load_balance", w.load_balance}, {"z", w.z},
                                                {"anchor", w.anchor}};
  bool any = false;
  for (auto [name, v] : all) {
    WATTMOE_REQUIRE(std::isfinite(v) && v >= 0, "objective weight {} must be a finite number >= 0, got {}", name, v);
    any = any || (v > 0 && std::string(name) != "anchor");
  }
  WATTMOE_REQUIRE(any, "objective weights: all zero (set at least one of nll, entropy, energy, router_entropy, "
                       "load_balance, z)");
  WATTMOE_REQUIRE(!w.entropy_gate || (std::isfinite(*w.entropy_gate) && *w.entropy_gate > 0),
                  "entropy_gate must be a finite number of nats > 0, got {}", w.entropy_gate.value_or(0));
}

template <class T>
LossComponents adapt_loss(const Transformer<T>& model, Activations<T>& acts, const int32_t* targets,
                          const ObjectiveWeights& w, const EnergyCosts* costs, std::vector<T>& dlogits) {
  const ModelConfig& c = model.config();
  const int64_t N = acts.tokens(), V = c.vocab_size;
  dlogits.assign(size_t(N * V), T(0));
  for (auto& a : acts.layers) std::fill(a.drouter.begin(), a.drouter.end(), T(0));
  LossComponents r;
  const T* logits = acts.logits.data();
  if (w.nll > 0) r.nll = next_token_nll<T>(logits, targets, N, V, w.nll, dlogits.data());
  if (w.entropy > 0)
    r.entropy = gated_entropy<T>(logits, N, V, w.entropy_gate.value_or(default_entropy_gate(V)), w.entropy,
                                 dlogits.data(), &r.entropy_kept);
  if (w.energy > 0) {
    WATTMOE_REQUIRE(costs && !costs->empty(), "the energy objective needs per-layer expert costs");
    r.energy = expected_expert_energy<T>(acts, *costs, w.energy);
  }
  if (w.router_entropy > 0) r.router_entropy = router_entropy<T>(acts, w.router_entropy);
  if (w.load_balance > 0 || w.z > 0) {
    const AuxLossValues aux = model.router_aux_losses(acts, w.load_balance, w.z);
    r.load_balance = aux.load_balance, r.z = aux.z;
  }
  r.total = w.nll * r.nll + w.entropy * r.entropy + w.energy * r.energy + w.router_entropy * r.router_entropy +
            w.load_balance * r.load_balance + w.z * r.z;
  return r;
}

template LossComponents adapt_loss<float>(const Transformer<float>&, Activations<float>&, const int32_t*,
                                          const ObjectiveWeights&, const EnergyCosts*, std::vector<float>&);
template LossComponents adapt_loss<double>(const Transformer<double>&, Activations<double>&, const int32_t*,
                                           const ObjectiveWeights&, const EnergyCosts*, std::vector<double>&);

}  // namespace wattmoe
