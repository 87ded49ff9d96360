#include "adapt/router_objectives.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate_energy_costs(const EnergyCosts& costs, int num_layers, int E) {
  const std::vector<ExpertCosts>& c = costs.layers;
  WATTMOE_REQUIRE(c.size() == 1 || int(c.size()) == num_layers,
                  "expert costs: expected one row per layer ({}) or one row for all layers, got {} rows", num_layers,
                  c.size());
  WATTMOE_REQUIRE(costs.tokens_per_step >= 1, "expert costs: tokens_per_step = {}: expected >= 1",
                  costs.tokens_per_step);
  for (size_t l = 0; l < c.size(); ++l) {
    WATTMOE_REQUIRE(int(c[l].fixed.size()) == E && int(c[l].per_token.size()) == E,
                    "expert costs row {}: expected {} experts, got {} fixed and {} per-token costs", l, E,
                    c[l].fixed.size(), c[l].per_token.size());
    validate_costs(c[l], E, true);  // finite and >= 0
  }
}

template <class T>
double expected_expert_energy(const RouterViews<T>& v, const EnergyCosts& costs, double weight) {
  const int L = v.moe_layers();
  const int64_t N = v.tokens, E = v.experts;
  if (L == 0 || N == 0) return 0;
  const double denom = double(N) * L;
  double total = 0;
  for (size_t l = 0; l < v.layers.size(); ++l) {
    const RouterView<T>& a = v.layers[l];
    if (!a.moe()) continue;
    const std::vector<double> c =
        per_token_cost(costs.layers.size() == 1 ? costs.layers[0] : costs.layers.at(l), costs.tokens_per_step);
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

template double expected_expert_energy<float>(const RouterViews<float>&, const EnergyCosts&, double);
template double expected_expert_energy<double>(const RouterViews<double>&, const EnergyCosts&, double);
template double router_entropy<float>(const RouterViews<float>&, double);
template double router_entropy<double>(const RouterViews<double>&, double);

}  // namespace wattmoe
