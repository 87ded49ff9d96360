// gpu::CudaAdaptModel: TestTimeAdapter's network (adapt/adapt_model.h) on the GPU, so that `wattmoe run --device cuda
// --ttt` adapts the model that scores. TransformerCudaT<T> (T = float: fp32 throughout; T = bf16: bf16 compute, fp32
// master weights and gradients) with host routing, so every routing policy and controller decision applies, and LoRA
// adapters run in forward and backward. The fused MoE kernels are not used (inference only, no LoRA).
//
// What lives where: the device holds one full weight set (θ₀ uploaded once at construction). The adapter keeps θ, θ₀,
// the teacher, the gradients and the optimiser on the host; the trainable parameters are few (router, norms, LoRA),
// so per step only they move: forward(weights) uploads the trainable ranges of `weights` when they are not the ones
// loaded (pointer changed or weights_changed() since; then sync_weights() refreshes a bf16 copy), and backward
// downloads only the trainable ranges' gradients and ADDS them into the host vector.
//
// Objectives: the same code as on the CPU, adapt_loss (adapt/adapt_loss.h), run on host copies of the last forward's
// router logits and probabilities (already on the host: routing runs there) and — only when the entropy objective
// is on — of the logits [B·S, V]; the resulting ∂L/∂logits goes up into dlogits() and each layer's ∂L/∂(router
// logits) into router_grad(l). Without the entropy objective the next-token loss runs on the device instead
// (TransformerCudaT::nll, same definition: mean over rows with a target ≥ 0), so no [B·S, V] array crosses the bus.
// The score (score()) is gpu/stream_cuda.h's: NLL and mean entropy on the device, counts from the host routing.
// Only the summation order of fp32 maths differs from CpuAdaptModel (and bf16 rounding for T = bf16).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "adapt/adapt_model.h"
#include "gpu/transformer_cuda.h"

namespace wattmoe::gpu {

template <class T>
class CudaAdaptModel final : public AdaptModel {
 public:
  // params: the full initial weights (host, ParamLayout::build(c) order), uploaded once. Owns its cuda::Context.
  CudaAdaptModel(const ModelConfig& c, const float* params, const GradMask& mask, std::vector<ParamRange> ranges,
                 int device = 0);
  ~CudaAdaptModel() override;

  const ModelConfig& config() const override { return model_->config(); }
  void forward(const float* weights, const int32_t* ids, int B, int S, const RouterSelect<float>& select) override;
  WindowScore score(const float* weights, const int32_t* ids, int S, const RouterSelect<float>& select) override;
  double mean_nll(const int32_t* targets) override;
  LossComponents loss(const int32_t* targets, const ObjectiveWeights& w, const LayerCosts* costs) override;
  void backward(const float* weights, const int32_t* ids, float* grads) override;
  void weights_changed() override { loaded_ = nullptr; }

  TransformerCudaT<T>& model() { return *model_; }
  int64_t uploads() const { return uploads_; }  // trainable-range uploads so far (tests: the cache works)

 private:
  void load(const float* weights);

  std::unique_ptr<cuda::Context> ctx_;
  std::unique_ptr<TransformerCudaT<T>> model_;
  Transformer<float> shadow_;   // the CPU model of the config: adapt_loss's definitions (router_aux_losses)
  GradMask mask_;
  std::vector<ParamRange> ranges_;
  const float* loaded_ = nullptr;  // host vector whose trainable ranges the device holds (null: stale)
  int64_t uploads_ = 0;
  Activations<float> mirror_;      // host copies of the last forward's logits (entropy only) and router outputs
  std::vector<float> dlogits_, packed_;
  cuda::DeviceBuffer<float> dlogits_f32_;
  std::vector<int32_t> targets_;
};

// A TestTimeAdapter factory for the GPU: precision "bf16" → CudaAdaptModel<bf16>, otherwise fp32; device: GPU index.
AdaptModelFactory cuda_adapt_model_factory(const std::string& precision, int device = 0);

}  // namespace wattmoe::gpu
