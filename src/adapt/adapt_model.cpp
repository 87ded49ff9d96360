#include "adapt/adapt_model.h"

#include "adapt/token_objectives.h"

namespace wattmoe {

void CpuAdaptModel::forward(const float* weights, const int32_t* ids, int B, int S, const RouterSelect<float>& select) {
  model_.forward(weights, ids, B, S, acts_, nullptr, select);
}

WindowScore CpuAdaptModel::score(const float* weights, const int32_t* ids, int S, const RouterSelect<float>& select) {
  return score_window(model_, weights, ids, S, select, acts_);
}

double CpuAdaptModel::mean_nll(const int32_t* targets) {
  return next_token_nll<float>(acts_.logits.data(), targets, acts_.tokens(), model_.config().vocab_size, 0, nullptr);
}

LossComponents CpuAdaptModel::loss(const int32_t* targets, const ObjectiveWeights& w, const LayerCosts* costs) {
  return adapt_loss<float>(model_, acts_, targets, w, costs, dlogits_);
}

void CpuAdaptModel::backward(const float* weights, const int32_t* ids, float* grads) {
  model_.backward(weights, ids, dlogits_.data(), acts_, grads, &mask_);
}

}  // namespace wattmoe
