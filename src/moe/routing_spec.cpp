#include "moe/routing_spec.h"

#include <memory>

#include "core/error.h"
#include "moe/policy_select.h"

namespace wattmoe {

void validate_routing_spec(const RoutingSpec& s, int num_layers, int E, int model_k) {
  make_policy(s.policy);  // an unknown name fails here, listing the known ones
  WATTMOE_REQUIRE(s.layer_knobs.empty() || int(s.layer_knobs.size()) == num_layers,
                  "routing: knobs for {} layers, the model has {}", s.layer_knobs.size(), num_layers);
  if (s.layer_knobs.empty()) validate_knobs(s.knobs, E, model_k);
  for (const PolicyKnobs& k : s.layer_knobs) validate_knobs(k, E, model_k);
  WATTMOE_REQUIRE(s.costs.size() <= 1 || int(s.costs.size()) == num_layers,
                  "routing: expert costs for {} layers, the model has {}", s.costs.size(), num_layers);
  for (const ExpertCosts& c : s.costs) validate_costs(c, E, false);
}

bool is_model_topk(const RoutingSpec& s, int model_k) {
  if (s.policy != "topk") return false;
  const size_t n = s.layer_knobs.empty() ? 1 : s.layer_knobs.size();
  for (size_t l = 0; l < n; ++l) {
    const PolicyKnobs& k = s.layer_knobs.empty() ? s.knobs : s.layer_knobs[l];
    for (bool m : k.mask)
      if (m) return false;
    if (k.k_max != 0 && k.k_max != model_k) return false;
  }
  return true;
}

SpecSelectFn spec_select(const RoutingSpec& s, int num_layers, int E, int model_k) {
  validate_routing_spec(s, num_layers, E, model_k);
  if (is_model_topk(s, model_k)) return nullptr;
  std::shared_ptr<const RoutingPolicy> policy = make_policy(s.policy);
  if (s.layer_knobs.empty()) return make_policy_select<float>(policy, E, model_k, s.costs, s.knobs);
  std::vector<PolicySelectFn<float>> per_layer;
  for (const PolicyKnobs& k : s.layer_knobs) per_layer.push_back(make_policy_select<float>(policy, E, model_k, s.costs, k));
  return [per_layer](int layer, const float* logits, const float* probs, int64_t n, Routing& out) {
    per_layer.at(size_t(layer))(layer, logits, probs, n, out);
  };
}

}  // namespace wattmoe
