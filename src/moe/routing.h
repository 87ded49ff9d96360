// Routing: which experts each token uses. A policy decides the *selection*; the model derives the weights from the
// router probabilities of the selected experts (renormalised or not, by the architecture's rule), so gradients flow
// through the weights whatever policy selected them.
#pragma once
#include <cstdint>
#include <vector>

namespace wattmoe {

struct Routing {
  int64_t tokens = 0;
  int k = 0;        // slots per token (the largest k any token uses)
  int experts = 0;
  std::vector<int32_t> expert;  // [tokens, k]; -1 marks an unused slot (policies with a variable k)
  std::vector<int32_t> counts;  // [experts]: (token, slot) pairs per expert

  void reset(int64_t n_tokens, int k_slots, int n_experts);
  void recount();
  // Appends src's tokens after this one's (k becomes the larger of the two, shorter rows padded with -1; counts
  // added). An empty Routing (no experts yet) takes src's expert count.
  void append_rows(const Routing& src);
  double mean_experts_per_token() const;
  int distinct_experts() const;  // experts with at least one token
};

// Top-k of each row of scores[n, E] in descending order; ties go to the lower expert index, always.
template <class T>
void select_topk(const T* scores, int64_t n, int E, int k, Routing& out);

// The route weights [n, k] of a selection from the router probabilities probs [n, E]: w = p of the selected expert
// (0 for an unused slot), divided by their sum over the token's slots when renorm (and the sum is > 0). Overwrites
// weight. The CPU and GPU models both use this, so their weights match bit for bit.
template <class T>
void route_weights(const Routing& r, const T* probs, bool renorm, T* weight);
// Its backward: dprobs[t, e] += ∂L/∂p from dweight [n, k], given the probabilities and the forward's weights.
template <class T>
void route_weights_bwd(const Routing& r, const T* probs, const T* weight, const T* dweight, bool renorm, T* dprobs);

}  // namespace wattmoe
