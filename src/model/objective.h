// Scalar objectives over a forward pass's logits, each with ∂/∂logits for backward.
//   nll:     mean over positions t < S-1 of each sequence of −log p(x_{t+1} | x_≤t) (the causal-LM shift)
//   entropy: mean over all B·S positions of the entropy (nats) of the next-token distribution
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wattmoe {

enum class Objective { Nll, Entropy };
Objective parse_objective(const std::string& s);  // "nll" | "entropy", Error otherwise

// Returns the mean loss; overwrites dlogits [B·S·V] with its gradient when dlogits is not null.
template <class T>
double objective_loss(Objective obj, const T* logits, const int32_t* ids, int B, int S, int V, T* dlogits);

}  // namespace wattmoe
