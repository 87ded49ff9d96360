#include "ops/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace wattmoe::ops {

template <class T>
double nll_loss(const T* logits, const int32_t* targets, int64_t rows, int64_t V, T* dlogits, double scale) {
  double total = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const T* x = logits + i * V;
    T* dx = dlogits ? dlogits + i * V : nullptr;
    if (targets[i] < 0) {
      if (dx) std::fill(dx, dx + V, T(0));
      continue;
    }
    WATTMOE_CHECK(targets[i] < V, "target {} >= vocab {}", targets[i], V);
    const T mx = *std::max_element(x, x + V);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(x[j] - mx));
    const double lse = double(mx) + std::log(sum);
    total += lse - double(x[targets[i]]);
    if (dx) {
      for (int64_t j = 0; j < V; ++j) dx[j] = T(scale * std::exp(double(x[j]) - lse));
      dx[targets[i]] -= T(scale);
    }
  }
  return total;
}

template <class T>
double entropy_loss(const T* logits, int64_t rows, int64_t V, T* dlogits, double scale) {
  double total = 0;
  std::vector<double> lp(static_cast<size_t>(V));
  for (int64_t i = 0; i < rows; ++i) {
    const T* x = logits + i * V;
    const T mx = *std::max_element(x, x + V);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(double(x[j] - mx));
    const double lse = double(mx) + std::log(sum);
    double h = 0;
    for (int64_t j = 0; j < V; ++j) {
      lp[j] = double(x[j]) - lse;
      h -= std::exp(lp[j]) * lp[j];
    }
    total += h;
    // ∂H/∂x_j = −p_j (log p_j + H)
    if (dlogits)
      for (int64_t j = 0; j < V; ++j) dlogits[i * V + j] = T(-scale * std::exp(lp[j]) * (lp[j] + h));
  }
  return total;
}

template double nll_loss<float>(const float*, const int32_t*, int64_t, int64_t, float*, double);
template double nll_loss<double>(const double*, const int32_t*, int64_t, int64_t, double*, double);
template double entropy_loss<float>(const float*, int64_t, int64_t, float*, double);
template double entropy_loss<double>(const double*, int64_t, int64_t, double*, double);

}  // namespace wattmoe::ops
