// Test-time objectives on the next-token distribution of one window's forward pass: logits [rows, V] (rows = B·S).
// Each returns its value and ADDS weight × ∂(value)/∂logits into dlogits [rows, V] (when dlogits is not null), so
// several objectives can share one dlogits buffer before one backward pass.
//
//   next_token_nll   mean over rows of −log p(target_t | ·), explicit targets [rows] (a window of S+1 tokens gives
//                    ids[1..S] as targets of the forward on ids[0..S-1]: every position is scored, unlike
//                    model/objective.h's causal shift, which drops the last one). A target < 0 skips its row.
//   gated_entropy    TENT's entropy minimisation with EATA's reliability gate. With H_t the entropy (nats) of row t
//                    and gate g (> 0; default 0.4·ln V): rows with H_t > g are excluded; the kept rows get
//                    c_t = exp(g − H_t) (= 1/exp(H_t − g), ≥ 1: the more confident, the heavier) and
//                    w_t = c_t / Σ_kept c_s. value = Σ_kept w_t·H_t (a weighted mean entropy).
//                    As in EATA, the weights are constants of the gradient (stop-gradient):
//                    ∂/∂logits_t = w_t · ∂H_t/∂logits_t. When no row passes the gate, value 0 and no gradient.
//                    gate_weights + weighted_entropy expose the two halves (the gradient check holds w fixed).
#pragma once
#include <cstdint>
#include <vector>

namespace wattmoe {

template <class T>
double next_token_nll(const T* logits, const int32_t* targets, int64_t rows, int64_t V, double weight, T* dlogits);

// Mean entropy (nats) of the rows, no gradient.
template <class T>
double mean_entropy(const T* logits, int64_t rows, int64_t V);

// w_t as described above ([rows], 0 for gated-out rows; all 0 when no row passes). kept (optional): rows kept.
template <class T>
std::vector<double> gate_weights(const T* logits, int64_t rows, int64_t V, double gate, int64_t* kept = nullptr);

// Σ_t w_t·H_t with the w_t held constant; adds weight × its gradient.
template <class T>
double weighted_entropy(const T* logits, int64_t rows, int64_t V, const std::vector<double>& w, double weight,
                        T* dlogits);

// gate_weights then weighted_entropy. kept_fraction (optional): share of rows that passed the gate.
template <class T>
double gated_entropy(const T* logits, int64_t rows, int64_t V, double gate, double weight, T* dlogits,
                     double* kept_fraction = nullptr);

// The default gate 0.4·ln V (EATA's E0 for V classes).
double default_entropy_gate(int64_t V);

}  // namespace wattmoe
