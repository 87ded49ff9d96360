#include "moe/aux_losses.h"

#include <cstddef>
#include <vector>

#include "moe/routing.h"
#include "ops/softmax.h"

namespace wattmoe {

template <class T>
AuxLossValues router_aux_losses(const RouterViews<T>& v, double lb_coef, double z_coef) {
  const int64_t N = v.tokens, E = v.experts;
  AuxLossValues out;
  const int moe_layers = v.moe_layers();
  if (moe_layers == 0) return out;
  const double rows = double(N) * moe_layers;
  std::vector<double> f(size_t(E), 0.0), P(size_t(E), 0.0);
  Routing top;
  for (const RouterView<T>& a : v.layers) {
    if (!a.moe()) continue;
    select_topk<T>(a.probs, N, int(E), v.top_k, top);
    for (int64_t e = 0; e < E; ++e) f[e] += top.counts[e] / rows;
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E; ++e) P[e] += double(a.probs[t * E + e]) / rows;
  }
  for (int64_t e = 0; e < E; ++e) out.load_balance += double(E) * f[e] * P[e];
  for (const RouterView<T>& a : v.layers) {
    if (!a.moe()) continue;
    std::vector<T> dp(size_t(N * E));
    for (int64_t t = 0; t < N; ++t)
      for (int64_t e = 0; e < E; ++e) dp[t * E + e] = T(lb_coef * double(E) * f[e] / rows);
    if (lb_coef != 0) ops::softmax_bwd<T>(a.probs, dp.data(), a.drouter, N, E);
    for (int64_t t = 0; t < N; ++t) {
      const T lse = ops::logsumexp<T>(&a.logits[t * E], E);
      out.z += double(lse) * double(lse) / rows;
      if (z_coef != 0)
        for (int64_t e = 0; e < E; ++e) a.drouter[t * E + e] += T(z_coef * 2.0 * double(lse) / rows) * a.probs[t * E + e];
    }
  }
  return out;
}

template AuxLossValues router_aux_losses<float>(const RouterViews<float>&, double, double);
template AuxLossValues router_aux_losses<double>(const RouterViews<double>&, double, double);

}  // namespace wattmoe
