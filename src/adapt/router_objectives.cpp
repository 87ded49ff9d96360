#include "adapt/router_objectives.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate_layer_costs(const LayerCosts& costs, int num_layers, int E) {
  WATTMOE_REQUIRE(costs.size() == 1 || int(costs.size()) == num_layers,
                  "expert costs: expected one row per layer ({}) or one row for all layers, got {} rows", num_layers,
                  costs.size());
  for (size_t l = 0; l < costs.size(); ++l) {
    WATTMOE_REQUIRE(int(costs[l].size()) == E, "expert costs row {}: expected {} experts, got {}", l, E,
                    costs[l].size());
    for (size_t e = 0; e < costs[l].size(); ++e)
      WATTMOE_REQUIRE(std::isfinite(costs[l][e]) && costs[l][e] >= 0,
                      "expert costs row {} expert {}: expected a finite cost >= 0, got {}", l, e, costs[l][e]);
  }
}

LayerCosts layer_costs_from(const std::vector<ExpertCosts>& costs, int64_t n) {
  LayerCosts out;
  for (const ExpertCosts& c : costs) out.push_back(per_token_cost(c, n));
  return out;
}

template <class T>
double expected_expert_energy(const RouterViews<T>& v, const LayerCosts& costs, double weight) {
  const int L = v.moe_layers();
  const int64_t N = v.tokens, E = v.experts;
  if (L == 0 || N == 0) return 0;
  const double denom = double(N) * L;
  double total = 0;
  for (size_t l = 0; l < v.layers.size(); ++l) {
    const RouterView<T>& a = v.layers[l];
    if (!a.moe()) continue;
    const std::vector<double>& c = costs.size() == 1 ? costs[0] : costs.at(l);
    WATTMOE_CHECK(int64_t(c.size()) == E);
    double mean = 0;
    for (double x : c) mean += x / double(E);
    std::vector<double> ct(size_t(E), 0.0);
    if (mean > 0)
      for (int64_t e = 0; e < E; ++e) ct[size_t(e)] = c[size_t(e)] / mean;
    for (int64_t t = 0; t < N; ++t) {
      const T* p = a.probs + t * E;
      double ec = 0;
      for (int64_t e = 0; e < E; ++e) ec += double(p[e]) * ct[size_t(e)];
      total += ec;
      if (weight == 0) continue;
      T* d = a.drouter + t * E;
      for (int64_t e = 0; e < E; ++e) d[e] += T(weight / denom * double(p[e]) * (ct[size_t(e)] - ec));
    }
  }
  return total / denom;
}

template <class T>
double router_entropy(const RouterViews<T>& v, double weight) {
  const int L = v.moe_layers();
  const int64_t N = v.tokens, E = v.experts;
  if (L == 0 || N == 0) return 0;
  const double denom = double(N) * L;
  double total = 0;
  std::vector<double> lp;
  lp.resize(size_t(E));
  for (const RouterView<T>& a : v.layers) {
    if (!a.moe()) continue;
    for (int64_t t = 0; t < N; ++t) {
      const T* x = a.logits + t * E;
      const double mx = double(*std::max_element(x, x + E));
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += std::exp(double(x[e]) - mx);
      const double lse = mx + std::log(sum);
      double h = 0;
      for (int64_t e = 0; e < E; ++e) {
        lp[size_t(e)] = double(x[e]) - lse;
        h -= std::exp(lp[size_t(e)]) * lp[size_t(e)];
      }
      total += h;
      if (weight == 0) continue;
      T* d = a.drouter + t * E;
      for (int64_t e = 0; e < E; ++e)
        d[e] += T(-weight / denom * std::exp(lp[size_t(e)]) * (lp[size_t(e)] + h));
    }
  }
  return total / denom;
}

template double expected_expert_energy<float>(const RouterViews<float>&, const LayerCosts&, double);
template double expected_expert_energy<double>(const RouterViews<double>&, const LayerCosts&, double);
template double router_entropy<float>(const RouterViews<float>&, double);
template double router_entropy<double>(const RouterViews<double>&, double);

}  // namespace wattmoe
