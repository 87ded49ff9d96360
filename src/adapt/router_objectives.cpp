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

namespace {

template <class T>
int moe_layers(const Activations<T>& acts) {
  int n = 0;
  for (const auto& a : acts.layers) n += a.router_probs.empty() ? 0 : 1;
  return n;
}

}  // namespace

template <class T>
double expected_expert_energy(Activations<T>& acts, const EnergyCosts& costs, double weight) {
  const int L = moe_layers(acts);
  const int64_t N = acts.tokens();
  if (L == 0 || N == 0) return 0;
  const double denom = double(N) * L;
  double total = 0;
  for (size_t l = 0; l < acts.layers.size(); ++l) {
    LayerActs<T>& a = acts.layers[l];
    if (a.router_probs.empty()) continue;
    const int64_t E = int64_t(a.router_probs.size()) / N;
    const std::vector<double> c =
        per_token_cost(costs.layers.size() == 1 ? costs.layers[0] : costs.layers.at(l), costs.tokens_per_step);
    WATTMOE_CHECK(int64_t(c.size()) == E);
    double mean = 0;
    for (double x : c) mean += x / double(E);
    std::vector<double> ct(size_t(E), 0.0);
    if (mean > 0)
      for (int64_t e = 0; e < E; ++e) ct[size_t(e)] = c[size_t(e)] / mean;
    for (int64_t t = 0; t < N; ++t) {
      const T* p = &a.router_probs[size_t(t * E)];
      double ec = 0;
      for (int64_t e = 0; e < E; ++e) ec += double(p[e]) * ct[size_t(e)];
      total += ec;
      if (weight == 0) continue;
      T* d = &a.drouter[size_t(t * E)];
      for (int64_t e = 0; e < E; ++e) d[e] += T(weight / denom * double(p[e]) * (ct[size_t(e)] - ec));
    }
  }
  return total / denom;
}

template <class T>
double router_entropy(Activations<T>& acts, double weight) {
  const int L = moe_layers(acts);
  const int64_t N = acts.tokens();
  if (L == 0 || N == 0) return 0;
  const double denom = double(N) * L;
  double total = 0;
  std::vector<double> lp;
  for (auto& a : acts.layers) {
    if (a.router_probs.empty()) continue;
    const int64_t E = int64_t(a.router_logits.size()) / N;
    lp.resize(size_t(E));
    for (int64_t t = 0; t < N; ++t) {
      const T* x = &a.router_logits[size_t(t * E)];
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
      T* d = &a.drouter[size_t(t * E)];
      for (int64_t e = 0; e < E; ++e)
        d[e] += T(-weight / denom * std::exp(lp[size_t(e)]) * (lp[size_t(e)] + h));
    }
  }
  return total / denom;
}

template double expected_expert_energy<float>(Activations<float>&, const EnergyCosts&, double);
template double expected_expert_energy<double>(Activations<double>&, const EnergyCosts&, double);
template double router_entropy<float>(Activations<float>&, double);
template double router_entropy<double>(Activations<double>&, double);

}  // namespace wattmoe
