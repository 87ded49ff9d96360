#include "adapt/adapt_loss.h"

#include <algorithm>
#include <cmath>

#include "ops/token_objectives.h"
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
LossComponents adapt_loss_terms(const T* logits, int64_t N, int64_t V, const RouterViews<T>& router,
                                const int32_t* targets, const ObjectiveWeights& w, const EnergyCosts* costs,
                                std::vector<T>& dlogits) {
  WATTMOE_CHECK(logits || (w.nll == 0 && w.entropy == 0), "token objectives without logits");
  if (logits) dlogits.assign(size_t(N * V), T(0));
  for (const RouterView<T>& a : router.layers)
    if (a.moe()) std::fill(a.drouter, a.drouter + N * router.experts, T(0));
  LossComponents r;
  if (w.nll > 0) r.nll = next_token_nll<T>(logits, targets, N, V, w.nll, dlogits.data());
  if (w.entropy > 0)
    r.entropy = gated_entropy<T>(logits, N, V, w.entropy_gate.value_or(default_entropy_gate(V)), w.entropy,
                                 dlogits.data(), &r.entropy_kept);
  if (w.energy > 0) {
    WATTMOE_REQUIRE(costs && !costs->empty(), "the energy objective needs per-layer expert costs");
    r.energy = expected_expert_energy<T>(router, *costs, w.energy);
  }
  if (w.router_entropy > 0) r.router_entropy = router_entropy<T>(router, w.router_entropy);
  if (w.load_balance > 0 || w.z > 0) {
    const AuxLossValues aux = router_aux_losses<T>(router, w.load_balance, w.z);
    r.load_balance = aux.load_balance, r.z = aux.z;
  }
  r.total = w.nll * r.nll + w.entropy * r.entropy + w.energy * r.energy + w.router_entropy * r.router_entropy +
            w.load_balance * r.load_balance + w.z * r.z;
  return r;
}

LossComponents adapt_loss(Runner& run, const int32_t* targets, const ObjectiveWeights& w, const EnergyCosts* costs) {
  const ModelConfig& c = run.config();
  const int64_t N = run.tokens(), V = c.vocab_size;
  WATTMOE_CHECK(N > 0, "loss before forward");
  const bool host_tokens = run.logits_on_host() || w.entropy > 0;
  ObjectiveWeights terms = w;
  if (!host_tokens) terms.nll = 0;  // the next-token loss where the logits are, below
  const bool token_terms = terms.nll > 0 || terms.entropy > 0;
  std::vector<float> dlogits;
  LossComponents r = adapt_loss_terms<float>(token_terms ? run.logits() : nullptr, N, V, run.router_views(), targets,
                                             terms, costs, dlogits);
  if (token_terms) {
    run.set_dlogits(dlogits.data());
  } else if (w.nll > 0) {
    r.nll = run.next_token_loss(targets, w.nll);
    r.total += w.nll * r.nll;
  } else {
    run.zero_dlogits();  // no token objective: nothing flows from the logits
  }
  return r;
}

template LossComponents adapt_loss_terms<float>(const float*, int64_t, int64_t, const RouterViews<float>&,
                                                const int32_t*, const ObjectiveWeights&, const EnergyCosts*,
                                                std::vector<float>&);
template LossComponents adapt_loss_terms<double>(const double*, int64_t, int64_t, const RouterViews<double>&,
                                                 const int32_t*, const ObjectiveWeights&, const EnergyCosts*,
                                                 std::vector<double>&);

}  // namespace wattmoe
