#include "energy/cost_model.h"

#include <algorithm>

#include "core/error.h"

namespace wattmoe {

void CostModel::check_index(int layer, int expert) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers(), "cost model {}: layer {} out of range [0, {})", name(), layer,
                  num_layers());
  WATTMOE_REQUIRE(expert >= 0 && expert < num_experts(layer), "cost model {}: layer {} expert {} out of range [0, {})",
                  name(), layer, expert, num_experts(layer));
}

double CostModel::joules(int layer, int expert, double tokens) const {
  return expert_cost(layer, expert, tokens).joules.at(tokens);
}

double CostModel::seconds(int layer, int expert, double tokens) const {
  return expert_cost(layer, expert, tokens).seconds.at(tokens);
}

ExpertCosts CostModel::routing_costs(int layer, double tokens) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers(), "cost model {}: layer {} out of range [0, {})", name(), layer,
                  num_layers());
  const double t = std::max(tokens, 1.0);
  ExpertCosts c;
  const int n = num_experts(layer);
  c.fixed.resize(n);
  c.per_token.resize(n);
  for (int e = 0; e < n; ++e) {
    const LinearCost j = expert_cost(layer, e, t).joules;
    c.fixed[e] = float(j.a);
    c.per_token[e] = float(j.b);
  }
  return c;
}

double CostModel::layer_joules(int layer, const std::vector<int>& counts) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers() && int(counts.size()) == num_experts(layer),
                  "cost model {}: layer {}: expected {} per-expert token counts, got {}", name(), layer,
                  layer >= 0 && layer < num_layers() ? num_experts(layer) : 0, counts.size());
  double sum = 0;
  for (size_t e = 0; e < counts.size(); ++e) sum += joules(layer, int(e), counts[e]);
  return sum;
}

double CostModel::layer_seconds(int layer, const std::vector<int>& counts) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers() && int(counts.size()) == num_experts(layer),
                  "cost model {}: layer {}: expected {} per-expert token counts, got {}", name(), layer,
                  layer >= 0 && layer < num_layers() ? num_experts(layer) : 0, counts.size());
  double sum = 0;  // experts run one after another in the grouped GEMM's time budget: times add
  for (size_t e = 0; e < counts.size(); ++e) sum += seconds(layer, int(e), counts[e]);
  return sum;
}

}  // namespace wattmoe
