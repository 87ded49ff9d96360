// AdaptModel: the model-facing half of test-time adaptation — what TestTimeAdapter (adapt/adapter.h) asks of the
// network: forward a batch, score a window, evaluate the objectives on the last forward, and backward into the
// trainable tensors' gradients. Everything else (the optimiser, anchor, EMA teacher, triggers, guards, replay) stays
// in the adapter on the host, over host parameter vectors in ParamLayout order.
//
// Two implementations: CpuAdaptModel here (Transformer<float>, the reference; exactly what the adapter did before
// this interface existed) and gpu::CudaAdaptModel (gpu/adapt_model_cuda.h: TransformerCudaT<float|bf16>, which holds
// one weight set on the device and re-uploads only the trainable ranges when the adapter's weights change).
//
// Weights: every call that runs the network names the full host parameter vector to use (θ, θ₀ or the teacher's).
// All vectors passed differ only inside the trainable ranges given at construction. An implementation may cache what
// it last loaded (keyed by the pointer): after changing the contents of a vector already passed, call
// weights_changed().
// Call order of a step: forward (or score) → loss → backward, with the same weights throughout.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "adapt/adapt_loss.h"
#include "adapt/param_groups.h"
#include "adapt/window_score.h"
#include "model/transformer.h"

namespace wattmoe {

class AdaptModel {
 public:
  virtual ~AdaptModel() = default;
  virtual const ModelConfig& config() const = 0;

  // ids [B, S] (host), positions from 0; keeps what loss and backward need.
  virtual void forward(const float* weights, const int32_t* ids, int B, int S, const RouterSelect<float>& select) = 0;
  // adapt/window_score.h's score of one window (ids: S + 1 tokens, B = 1); its forward serves a following loss/backward.
  virtual WindowScore score(const float* weights, const int32_t* ids, int S, const RouterSelect<float>& select) = 0;
  // Mean −log p(target) over the last forward's rows with target ≥ 0 (targets [B·S]); no gradient.
  virtual double mean_nll(const int32_t* targets) = 0;
  // adapt_loss (adapt/adapt_loss.h) over the last forward; sets the gradient seeds the next backward starts from.
  virtual LossComponents loss(const int32_t* targets, const ObjectiveWeights& w, const LayerCosts* costs) = 0;
  // ADDS ∂L/∂θ into grads (host, layout order) for the trainable tensors only; other elements are left untouched.
  // weights and ids: those of the last forward.
  virtual void backward(const float* weights, const int32_t* ids, float* grads) = 0;
  // The contents of a weight vector passed before have changed (an optimiser step, a teacher update, a reset).
  virtual void weights_changed() {}
};

// Builds the model side for the adapted config (LoRA added when asked), its full initial parameters (θ₀, host,
// layout order), the backward mask and the trainable ranges.
using AdaptModelFactory = std::function<std::unique_ptr<AdaptModel>(
    const ModelConfig& config, const float* params, const GradMask& mask, const std::vector<ParamRange>& ranges)>;

// The CPU reference: Transformer<float> with host activations.
class CpuAdaptModel final : public AdaptModel {
 public:
  CpuAdaptModel(const ModelConfig& c, const GradMask& mask) : model_(c), mask_(mask) {}
  const ModelConfig& config() const override { return model_.config(); }
  void forward(const float* weights, const int32_t* ids, int B, int S, const RouterSelect<float>& select) override;
  WindowScore score(const float* weights, const int32_t* ids, int S, const RouterSelect<float>& select) override;
  double mean_nll(const int32_t* targets) override;
  LossComponents loss(const int32_t* targets, const ObjectiveWeights& w, const LayerCosts* costs) override;
  void backward(const float* weights, const int32_t* ids, float* grads) override;

 private:
  Transformer<float> model_;
  GradMask mask_;
  Activations<float> acts_;
  std::vector<float> dlogits_;
};

}  // namespace wattmoe
