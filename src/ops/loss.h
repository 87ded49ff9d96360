// Losses over logits[rows, V]. Each returns the SUM over scored rows (the caller divides) and, when dlogits is not
// null, OVERWRITES dlogits with `scale` × ∂(sum)/∂logits (rows not scored get 0).
// Rows run in parallel on the default pool; the per-row values are added in row order (the same sum on any number
// of threads).
#pragma once
#include <cstdint>

namespace wattmoe::ops {

// Negative log-likelihood of targets[row] (a target < 0 skips the row). Returns Σ −log softmax(x)[target].
template <class T>
double nll_loss(const T* logits, const int32_t* targets, int64_t rows, int64_t V, T* dlogits, double scale);

// Entropy of softmax(logits) in nats, every row scored: Σ_rows −Σ_j p_j log p_j.
template <class T>
double entropy_loss(const T* logits, int64_t rows, int64_t V, T* dlogits, double scale);

}  // namespace wattmoe::ops
