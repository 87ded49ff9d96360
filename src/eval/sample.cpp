#include "eval/sample.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace wattmoe {

int32_t sample_token(const float* logits, int V, double temperature, double top_p, Rng& rng) {
  WATTMOE_REQUIRE(temperature >= 0, "temperature must be >= 0, got {}", temperature);
  WATTMOE_REQUIRE(top_p > 0 && top_p <= 1, "top-p must be in (0, 1], got {}", top_p);
  // NaN or inf logits (activations that overflow) would pick an arbitrary token, or none.
  for (int i = 0; i < V; ++i)
    WATTMOE_REQUIRE(std::isfinite(logits[i]), "the model's logits are not finite ({} at token id {}): its activations "
                    "overflow or hold NaN (finite weights too large?)", logits[i], i);
  if (temperature == 0) return int32_t(std::max_element(logits, logits + V) - logits);
  const float mx = *std::max_element(logits, logits + V);
  std::vector<double> p(static_cast<size_t>(V));
  double sum = 0;
  for (int i = 0; i < V; ++i) sum += (p[i] = std::exp(double(logits[i] - mx) / temperature));
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  // Keep the smallest prefix whose mass reaches top_p, then sample within it.
  double kept = 0;
  size_t n = 0;
  while (n < order.size() && (n == 0 || kept < top_p * sum)) kept += p[order[n++]];
  double u = rng.uniform() * kept;
  for (size_t i = 0; i < n; ++i) {
    u -= p[order[i]];
    if (u <= 0) return order[i];
  }
  return order[n - 1];
}

}  // namespace wattmoe
