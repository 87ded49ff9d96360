#include "eval/routing_setup.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "energy/cost_analytic.h"
#include "energy/cost_table.h"
#include "eval/policy_points.h"
#include "ops/quant.h"

namespace wattmoe {

std::vector<bool> parse_mask(const std::string& s, int E) {
  std::vector<bool> m;
  if (s.empty()) return m;
  m.assign(size_t(E), false);
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long e = std::strtol(item.c_str(), &end, 10);
    WATTMOE_REQUIRE(!item.empty() && end && *end == '\0' && e >= 0 && e < E,
                    "--mask: '{}' is not an expert id in [0, {})", item, E);
    m[size_t(e)] = true;
  }
  return m;
}

std::pair<int64_t, int64_t> parse_expert_shape(const std::string& s) {
  long long h = 0, i = 0;
  char x = 0, extra = 0;
  WATTMOE_REQUIRE(std::sscanf(s.c_str(), "%lld%c%lld%c", &h, &x, &i, &extra) == 3 && x == 'x' && h > 0 && i > 0 &&
                      h <= kMaxExpertDim && i <= kMaxExpertDim,
                  "--expert-shape: '{}' is not HxI with integers in [1, {}] (e.g. 4096x14336)", s, kMaxExpertDim);
  return {h, i};
}

namespace {

std::shared_ptr<const CostModel> make_cost_model(const RoutingOptions& a, const ModelConfig& c,
                                                 const std::string& expert_precision) {
  if (a.costs != "analytic") {
    auto t = std::make_shared<ProfiledCostModel>(ProfiledCostModel::load(a.costs));
    WATTMOE_REQUIRE(t->num_layers() == c.num_layers, "--costs {}: table has {} layers, the model {}", a.costs,
                    t->num_layers(), c.num_layers);
    for (int l = 0; l < c.num_layers; ++l)
      WATTMOE_REQUIRE(t->num_experts(l) == c.num_experts, "--costs {}: layer {} has {} experts, the model {}", a.costs,
                      l, t->num_experts(l), c.num_experts);
    return t;
  }
  const double weight_bytes = ops::expert_precision_bytes(expert_precision);
  ExpertShape shape{c.hidden_size, c.moe_intermediate_size, weight_bytes, 2, 3};
  if (!a.expert_shape.empty()) std::tie(shape.hidden, shape.ffn) = parse_expert_shape(a.expert_shape);
  return std::make_shared<AnalyticCostModel>(
      AnalyticCostModel::uniform(c.num_layers, c.num_experts, shape, HardwareCoeffs{}));
}

// The pruned experts of every layer: knobs.mask plus the r least-used of the calibration's counts (MoE layers).
std::vector<std::vector<bool>> pruning_masks(const RoutingOptions& a, const ModelConfig& c, const PolicyKnobs& k) {
  WATTMOE_REQUIRE(a.prune_least_used >= 0 && a.prune_least_used < c.num_experts,
                  "--prune-least-used {}: expected 0 (off) to {} (leaving at least one of {} experts)",
                  a.prune_least_used, c.num_experts - 1, c.num_experts);
  WATTMOE_REQUIRE(a.prune_least_used == 0 || !a.calibration.empty(),
                  "--prune-least-used {} needs --calibration (a wattmoe eval JSON with expert_counts)",
                  a.prune_least_used);
  if (a.prune_least_used == 0) return {};
  const Json cal = read_json_file(a.calibration);
  WATTMOE_REQUIRE(cal.is_object() && cal.contains("expert_counts") && cal["expert_counts"].is_object(),
                  "--calibration {}: no \"expert_counts\" object (the output of wattmoe eval)", a.calibration);
  const Json& counts = cal["expert_counts"];
  std::vector<std::vector<bool>> masks;
  for (int l = 0; l < c.num_layers; ++l) {
    std::vector<bool> m = k.mask.empty() ? std::vector<bool>(size_t(c.num_experts), false) : k.mask;
    if (c.is_moe_layer(l)) {
      const std::string key = std::to_string(l);
      WATTMOE_REQUIRE(counts.contains(key) && counts[key].is_array() && int(counts[key].size()) == c.num_experts,
                      "--calibration {}: expert_counts of layer {} missing or not {} counts", a.calibration, l,
                      c.num_experts);
      std::vector<int64_t> use;
      for (const Json& v : counts[key]) {
        WATTMOE_REQUIRE(v.is_number_integer() && v.get<int64_t>() >= 0,
                        "--calibration {}: expert_counts of layer {}: expected counts >= 0", a.calibration, l);
        use.push_back(v.get<int64_t>());
      }
      for (int e : least_used_experts(use, a.prune_least_used)) m[size_t(e)] = true;
      WATTMOE_REQUIRE(std::find(m.begin(), m.end(), false) != m.end(),
                      "--prune-least-used {} with --mask: layer {} has no expert left", a.prune_least_used, l);
    }
    masks.push_back(std::move(m));
  }
  return masks;
}

}  // namespace

RoutingSetup make_routing(const RoutingOptions& a, const ModelConfig& c, double tokens_per_step,
                          const std::string& expert_precision) {
  RoutingSetup r;
  r.num_experts = c.num_experts, r.model_k = c.top_k;
  r.policy = make_policy(a.policy);
  PolicyKnobs& k = r.knobs;
  k.lambda = a.lambda, k.p = a.top_p, k.beta = a.beta, k.k_min = a.k_min, k.k_max = a.k_max;
  k.budget_j = a.budget_j, k.reuse_min_tokens = a.reuse_min_tokens;
  k.mask = parse_mask(a.mask, c.num_experts);
  validate_knobs(k, c.num_experts, c.top_k);
  r.layer_masks = pruning_masks(a, c, k);
  r.pruned = a.prune_least_used, r.calibration = a.calibration;
  r.cost_model = make_cost_model(a, c, expert_precision);
  for (int l = 0; l < c.num_layers; ++l) {
    ExpertCosts ec;
    if (c.is_moe_layer(l)) {
      ec = r.cost_model->routing_costs(l, tokens_per_step);
    } else {
      ec.fixed.assign(size_t(c.num_experts), 0.f), ec.per_token.assign(size_t(c.num_experts), 0.f);
    }
    r.layer_costs.push_back(std::move(ec));
  }
  return r;
}

RoutingSpec RoutingSetup::spec() const {
  RoutingSpec s;
  s.policy = policy->name(), s.knobs = knobs, s.costs = layer_costs;
  for (const std::vector<bool>& m : layer_masks) {
    s.layer_knobs.push_back(knobs);
    s.layer_knobs.back().mask = m;
  }
  return s;
}

RoutingObserver RoutingSetup::observer(std::shared_ptr<RoutingEnergyTally> tally) const {
  return tally_observer(layer_costs, tally_fixed_share, std::move(tally));
}

Json knobs_json(const PolicyKnobs& k) {
  Json j{{"lambda", k.lambda}, {"p", k.p},   {"beta", k.beta},
         {"k_min", k.k_min},   {"k_max", k.k_max}, {"reuse_min_tokens", k.reuse_min_tokens}};
  j["budget_j"] = std::isfinite(k.budget_j) ? Json(k.budget_j) : Json("inf");
  std::vector<int> masked;
  for (size_t e = 0; e < k.mask.size(); ++e)
    if (k.mask[e]) masked.push_back(int(e));
  j["mask"] = masked;
  return j;
}

std::string policy_text(const std::string& policy, const PolicyKnobs& k, int model_k) {
  std::string s;
  if (policy == "skip") s = fmt::format("skip beta={:.2f}", k.beta);
  else if (policy == "top_p") s = fmt::format("top_p p={:.2f}", k.p);
  else if (policy == "cost") s = fmt::format("cost lambda={:.3g}", k.lambda);
  else if (policy == "budget") s = fmt::format("budget {:.3g} J/layer-step", k.budget_j);
  else s = fmt::format("{} k={}", policy, resolved_k_max(k, model_k));
  const auto masked = std::count(k.mask.begin(), k.mask.end(), true);
  if (masked > 0) s += fmt::format(" + {} masked", masked);
  return s;
}

Json RoutingSetup::describe() const {
  Json j{{"policy", policy->name()}, {"knobs", knobs_json(knobs)}, {"costs", cost_model->name()}};
  if (pruned > 0) {
    Json layers = Json::object();
    for (size_t l = 0; l < layer_masks.size(); ++l) {
      std::vector<int> ids;
      for (size_t e = 0; e < layer_masks[l].size(); ++e)
        if (layer_masks[l][e]) ids.push_back(int(e));
      layers[std::to_string(l)] = ids;
    }
    j["pruned"] = Json{{"least_used", pruned}, {"calibration", calibration}, {"layers", layers}};
  }
  return j;
}

}  // namespace wattmoe
