#include "model/objective.h"

#include "core/error.h"
#include "ops/loss.h"

namespace wattmoe {

Objective parse_objective(const std::string& s) {
  if (s == "nll") return Objective::Nll;
  if (s == "entropy") return Objective::Entropy;
  fail("unknown objective \"{}\" (expected nll or entropy)", s);
}

template <class T>
double objective_loss(Objective obj, const T* logits, const int32_t* ids, int B, int S, int V, T* dlogits) {
  const int64_t N = int64_t(B) * S;
  if (obj == Objective::Entropy) {
    return ops::entropy_loss<T>(logits, N, V, dlogits, 1.0 / double(N)) / double(N);
  }
  WATTMOE_REQUIRE(S >= 2, "the nll objective needs sequences of at least 2 tokens, got {}", S);
  std::vector<int32_t> targets(size_t(N), -1);
  for (int b = 0; b < B; ++b)
    for (int s = 0; s + 1 < S; ++s) targets[size_t(b) * S + s] = ids[size_t(b) * S + s + 1];
  const double count = double(B) * (S - 1);
  return ops::nll_loss<T>(logits, targets.data(), N, V, dlogits, 1.0 / count) / count;
}

template double objective_loss<float>(Objective, const float*, const int32_t*, int, int, int, float*);
template double objective_loss<double>(Objective, const double*, const int32_t*, int, int, int, double*);

}  // namespace wattmoe
