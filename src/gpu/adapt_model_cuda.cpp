#include "gpu/adapt_model_cuda.h"

#include <type_traits>

#include "core/error.h"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::gpu {

template <class T>
CudaAdaptModel<T>::CudaAdaptModel(const ModelConfig& c, const float* params, const GradMask& mask,
                                  std::vector<ParamRange> ranges, int device)
    : ctx_(std::make_unique<cuda::Context>(device)),
      model_(std::make_unique<TransformerCudaT<T>>(c, *ctx_)),
      shadow_(c),
      mask_(mask),
      ranges_(std::move(ranges)) {
  model_->upload_params(params);
  loaded_ = params;
  int64_t n = 0;
  for (const ParamRange& r : ranges_) n += r.numel;
  packed_.resize(size_t(n));
}

template <class T>
CudaAdaptModel<T>::~CudaAdaptModel() = default;

template <class T>
void CudaAdaptModel<T>::load(const float* weights) {
  if (weights == loaded_) return;
  // Pageable host memory: each copy has left `weights` when cudaMemcpyAsync returns, so the host may change it next.
  for (const ParamRange& r : ranges_)
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(model_->params() + r.offset, weights + r.offset, sizeof(float) * size_t(r.numel),
                                      cudaMemcpyHostToDevice, ctx_->stream()));
  model_->sync_weights();
  loaded_ = weights;
  ++uploads_;
}

template <class T>
void CudaAdaptModel<T>::forward(const float* weights, const int32_t* ids, int B, int S,
                                const RouterSelect<float>& select) {
  load(weights);
  model_->forward(ids, B, S, select);
}

template <class T>
WindowScore CudaAdaptModel<T>::score(const float* weights, const int32_t* ids, int S,
                                     const RouterSelect<float>& select) {
  const ModelConfig& c = model_->config();
  WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
  for (int t = 0; t <= S; ++t)  // as score_window: the targets too (forward checks only its inputs)
    WATTMOE_REQUIRE(ids[t] >= 0 && ids[t] < c.vocab_size, "token id {} at window position {} is outside [0, {})",
                    ids[t], t, c.vocab_size);
  forward(weights, ids, 1, S, select);
  WindowScore w;
  w.nats = model_->nll(ids + 1, 0.0, /*want_grad=*/false);
  w.tokens = S;
  w.entropy = model_->objective(Objective::Entropy, /*want_grad=*/false);  // mean over the S rows, as mean_entropy
  w.counts.assign(size_t(c.num_layers), {});
  int64_t pairs = 0, moe = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const Routing& r = model_->routing(l).routing;
    w.counts[size_t(l)].assign(r.counts.begin(), r.counts.end());
    for (int32_t n : r.counts) pairs += n;
    ++moe;
  }
  w.experts_per_token = moe ? double(pairs) / double(int64_t(S) * moe) : 0;
  return w;
}

template <class T>
double CudaAdaptModel<T>::mean_nll(const int32_t* targets) {
  const int64_t N = model_->tokens();
  int64_t scored = 0;
  for (int64_t i = 0; i < N; ++i) scored += targets[i] >= 0 ? 1 : 0;
  if (scored == 0) return 0;
  return model_->nll(targets, 0.0, /*want_grad=*/false) / double(scored);
}

template <class T>
LossComponents CudaAdaptModel<T>::loss(const int32_t* targets, const ObjectiveWeights& w, const LayerCosts* costs) {
  const ModelConfig& c = model_->config();
  const int64_t N = model_->tokens(), V = c.vocab_size, E = c.num_experts;
  WATTMOE_CHECK(N > 0, "loss before forward");
  const bool host_tokens = w.entropy > 0;  // the gated entropy runs on the host, and then the NLL with it
  mirror_.B = model_->batch(), mirror_.S = model_->seq(), mirror_.pos0 = 0;
  if (host_tokens) mirror_.logits = model_->download_logits();
  else mirror_.logits.clear();
  mirror_.layers.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerActs<float>& a = mirror_.layers[size_t(l)];
    if (!c.is_moe_layer(l)) {
      a.router_logits.clear(), a.router_probs.clear(), a.drouter.clear();
      continue;
    }
    const HostRouting& hr = model_->routing(l);
    WATTMOE_CHECK(int64_t(hr.probs.size()) == N * E, "layer {}: no router probabilities kept by the last forward", l);
    a.router_logits = hr.logits, a.router_probs = hr.probs;
    a.drouter.assign(size_t(N * E), 0.f);
  }
  ObjectiveWeights router_only = w;
  if (!host_tokens) router_only.nll = 0;  // next-token loss on the device below
  LossComponents r = adapt_loss<float>(shadow_, mirror_, targets, router_only, costs, dlogits_);
  if (host_tokens) {  // dlogits ← the host's ∂L/∂logits
    if constexpr (std::is_same_v<T, float>) {
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(model_->dlogits(), dlogits_.data(), sizeof(float) * size_t(N * V),
                                        cudaMemcpyHostToDevice, ctx_->stream()));
    } else {
      dlogits_f32_.upload(dlogits_, ctx_->stream());
      cuda::convert<T, float>(*ctx_, dlogits_f32_.data(), model_->dlogits(), N * V);
    }
  } else if (w.nll > 0) {  // overwrites dlogits with w.nll/scored · ∂Σ/∂logits, as next_token_nll's weight/scored
    targets_.assign(targets, targets + N);
    int64_t scored = 0;
    for (int32_t t : targets_) scored += t >= 0 ? 1 : 0;
    if (scored > 0) {
      r.nll = model_->nll(targets_.data(), w.nll / double(scored), /*want_grad=*/true) / double(scored);
      r.total += w.nll * r.nll;
    } else {
      WATTMOE_CUDA_CALL(cudaMemsetAsync(model_->dlogits(), 0, sizeof(T) * size_t(N * V), ctx_->stream()));
    }
  } else {  // no token objective: nothing flows from the logits
    WATTMOE_CUDA_CALL(cudaMemsetAsync(model_->dlogits(), 0, sizeof(T) * size_t(N * V), ctx_->stream()));
  }
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) model_->router_grad(l) = mirror_.layers[size_t(l)].drouter;
  return r;
}

template <class T>
void CudaAdaptModel<T>::backward(const float* weights, const int32_t* ids, float* grads) {
  (void)ids;  // the device keeps the forward's ids
  WATTMOE_CHECK(weights == loaded_, "backward with other weights than the last forward's");
  model_->zero_grads();
  model_->backward(&mask_);
  int64_t at = 0;
  for (const ParamRange& r : ranges_) {
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(packed_.data() + at, model_->master_grads() + r.offset,
                                      sizeof(float) * size_t(r.numel), cudaMemcpyDeviceToHost, ctx_->stream()));
    at += r.numel;
  }
  ctx_->sync();
  at = 0;
  for (const ParamRange& r : ranges_) {
    float* g = grads + r.offset;
    for (int64_t i = 0; i < r.numel; ++i) g[i] += packed_[size_t(at + i)];
    at += r.numel;
  }
}

template class CudaAdaptModel<float>;
template class CudaAdaptModel<bf16>;

AdaptModelFactory cuda_adapt_model_factory(const std::string& precision, int device) {
  return [precision, device](const ModelConfig& c, const float* params, const GradMask& mask,
                             const std::vector<ParamRange>& ranges) -> std::unique_ptr<AdaptModel> {
    if (precision == "bf16") return std::make_unique<CudaAdaptModel<bf16>>(c, params, mask, ranges, device);
    return std::make_unique<CudaAdaptModel<float>>(c, params, mask, ranges, device);
  };
}

}  // namespace wattmoe::gpu
