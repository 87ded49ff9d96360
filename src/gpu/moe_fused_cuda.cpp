// The fused MoE path of TransformerCudaT<bf16> (gpu/transformer_cuda.h, "Fused MoE kernels"): eligibility, the
// expert-major weight layout, one MoeLayerCuda forward per MoE layer, and the routing copy queued once per forward.
#include "gpu/moe_fused_cuda.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "gpu/device_acts.h"
#include "gpu/transformer_cuda.h"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::gpu {

const char* moe_kernels_name(MoeKernels k) { return k == MoeKernels::Fused ? "fused" : "host"; }

std::vector<int64_t> expert_major_offsets(const ModelConfig& c, const ParamLayout& L, int64_t* total) {
  const std::vector<ParamSpec>& sp = L.specs();
  std::vector<int64_t> off(sp.size());
  const int64_t m = int64_t(c.moe_intermediate_size) * c.hidden_size, E = c.num_experts;
  const auto align = [](int64_t o) { return (o + 7) / 8 * 8; };  // 8 bf16 = 16 bytes, what the fused kernels load
  int64_t pos = 0;
  for (size_t i = 0; i < sp.size();) {
    const ParamSpec& s = sp[i];
    if (s.kind != ParamKind::Expert && s.kind != ParamKind::Lora) {
      off[i] = align(pos), pos = off[i] + s.numel, ++i;
      continue;
    }
    // This layer's routed experts (and their LoRA factors), which follow one another in the layout.
    const int64_t gate = align(pos), up = align(gate + E * m), down = align(up + E * m);
    int64_t lora = align(down + E * m);
    std::vector<int> seen(size_t(E), 0);  // expert tensors met so far per expert (gate, up, down order)
    size_t j = i;
    for (; j < sp.size() && sp[j].layer == s.layer && (sp[j].kind == ParamKind::Expert || sp[j].kind == ParamKind::Lora);
         ++j) {
      const ParamSpec& t = sp[j];
      if (t.kind == ParamKind::Expert) {
        const int which = seen[size_t(t.expert)]++;
        WATTMOE_CHECK(which < 3 && t.numel == m, "unexpected expert tensor {}", t.name);
        off[j] = (which == 0 ? gate : which == 1 ? up : down) + t.expert * m;
      } else {
        off[j] = lora, lora = align(lora + t.numel);
      }
    }
    for (int e = 0; e < E; ++e) WATTMOE_CHECK(seen[size_t(e)] == 3, "layer {}: expert {} incomplete", s.layer, e);
    pos = lora, i = j;
  }
  *total = align(pos);
  return off;
}

FusedMoeState::FusedMoeState(const ModelConfig& c) {
  shape.hidden = c.hidden_size, shape.intermediate = c.moe_intermediate_size, shape.experts = c.num_experts;
  shape.top_k = c.top_k, shape.renorm = c.norm_topk_prob;  // the rule route_weights applies (Mixtral: always)
  moe_index.assign(size_t(c.num_layers), -1);
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) moe_index[size_t(l)] = moe_layers++;
  WATTMOE_CUDA_CALL(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
}

FusedMoeState::~FusedMoeState() {
  if (copied) cudaEventDestroy(copied);
}

void FusedMoeState::prepare(cuda::Context& ctx, int64_t N) {
  WATTMOE_REQUIRE(N <= (1 << 30), "fused MoE forward of {} tokens: too many", N);
  const size_t nid = size_t(moe_layers) * size_t(N) * size_t(shape.top_k);
  const size_t ncnt = size_t(moe_layers) * size_t(shape.experts);
  if (layer && N <= max_tokens && nid <= host_ids.size() && ncnt <= host_counts.size()) return;
  ctx.sync();  // the old workspace and host arrays may still be in use by queued work
  if (!layer || N > max_tokens) {
    MoeCudaOptions opt;
    opt.name = "model.moe";  // one layer object serves every MoE layer
    layer.reset();
    layer = std::make_unique<MoeLayerCuda>(shape, int(N), opt);
    max_tokens = int(N);
  }
  ids.resize(std::max(ids.size(), nid)), counts.resize(ncnt);
  host_ids.resize(std::max(host_ids.size(), nid)), host_counts.resize(ncnt);
}

template <class T>
std::string TransformerCudaT<T>::fused_moe_unsupported() const {
  const ModelConfig& c = cfg_;
  if constexpr (std::is_same_v<T, float>) {
    return "the fused MoE kernels are bf16 and this model runs in fp32 (use --precision bf16)";
  } else {
    bool any = false;
    for (int l = 0; l < c.num_layers; ++l) any = any || c.is_moe_layer(l);
    if (!any) return "the model has no MoE layer";
    if (c.lora_rank > 0)
      return fmt::format("the experts carry LoRA adapters (rank {}), which the fused kernels do not apply", c.lora_rank);
    if (c.shared_expert_intermediate_size > 0) return "the model has a shared expert, which the fused kernels lack";
    if (c.hidden_size % 8 != 0)
      return fmt::format("hidden size {} is not a multiple of 8 (the fused kernels move 16-byte rows)", c.hidden_size);
    if (c.moe_intermediate_size % 8 != 0)
      return fmt::format("expert width {} is not a multiple of 8 (the fused kernels move 16-byte rows)",
                         c.moe_intermediate_size);
    if (c.num_experts > 256) return fmt::format("{} experts: the fused kernels take at most 256", c.num_experts);
    return "";
  }
}

template <class T>
void TransformerCudaT<T>::set_moe_kernels(MoeKernels k) {
  if (k == MoeKernels::Fused) {
    const std::string why = fused_moe_unsupported();
    WATTMOE_REQUIRE(why.empty(), "fused MoE kernels: {}", why);
    if (!fused_) fused_ = std::make_unique<FusedMoeState>(cfg_);
    for (int l = 0; l < cfg_.num_layers; ++l) {  // the expert-major layout MoeLayerCuda reads (expert_major_offsets)
      const LayerView<T>& w = w_.layers[size_t(l)];
      if (!w.moe) continue;
      const int64_t m = int64_t(cfg_.moe_intermediate_size) * cfg_.hidden_size;
      for (int e = 0; e < cfg_.num_experts; ++e)
        WATTMOE_CHECK(w.experts[size_t(e)].gate == w.experts[0].gate + e * m &&
                      w.experts[size_t(e)].up == w.experts[0].up + e * m &&
                      w.experts[size_t(e)].down == w.experts[0].down + e * m,
                      "layer {} expert {}: weights not expert-major", l, e);
    }
  }
  kernels_ = k;
}

template <class T>
const HostRouting& TransformerCudaT<T>::routing(int layer) const {
  if (fused_ && fused_->pending) fused_collect_routing();
  return host_[size_t(layer)];
}

template <class T>
void TransformerCudaT<T>::fused_moe_forward(int l) {
  if constexpr (std::is_same_v<T, float>) {
    WATTMOE_CHECK(false, "fused MoE forward in an fp32 model");
  } else {
    const ModelConfig& c = cfg_;
    const LayerView<T>& w = w_.layers[size_t(l)];
    DeviceActs<T>& A = *acts_;
    FusedMoeState& F = *fused_;
    const int64_t N = tokens(), H = c.hidden_size, E = c.num_experts, k = c.top_k;
    const int64_t m = F.moe_index[size_t(l)];
    WATTMOE_CHECK(m >= 0 && N <= F.max_tokens);
    host_[size_t(l)] = HostRouting{};
    F.layer->use_device_weights(w.router, w.experts[0].gate, w.experts[0].up, w.experts[0].down);
    A.moe_out.resize(size_t(N * H));
    F.layer->forward(acts_->layers[size_t(l)].h_ffn.data(), A.moe_out.data(), int(N), ctx_.stream());
    // This layer's routing into the per-forward arrays (device to device, queued: no host synchronisation).
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.ids.data() + m * N * k, F.layer->topk_ids(), sizeof(int32_t) * size_t(N * k),
                                      cudaMemcpyDeviceToDevice, ctx_.stream()));
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.counts.data() + m * E, F.layer->expert_counts(), sizeof(int32_t) * size_t(E),
                                      cudaMemcpyDeviceToDevice, ctx_.stream()));
    cuda::axpy<T>(ctx_, 1.f, A.moe_out.data(), A.x.data(), N * H);  // x += moe(x), one rounding as the host path
  }
}

template <class T>
void TransformerCudaT<T>::fused_queue_routing() {
  FusedMoeState& F = *fused_;
  const int64_t N = tokens();
  const size_t nid = size_t(F.moe_layers) * size_t(N) * size_t(cfg_.top_k), ncnt = size_t(F.moe_layers) * cfg_.num_experts;
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.host_ids.data(), F.ids.data(), sizeof(int32_t) * nid, cudaMemcpyDeviceToHost,
                                    ctx_.stream()));
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.host_counts.data(), F.counts.data(), sizeof(int32_t) * ncnt,
                                    cudaMemcpyDeviceToHost, ctx_.stream()));
  WATTMOE_CUDA_CALL(cudaEventRecord(F.copied, ctx_.stream()));
  F.tokens = N, F.pending = true;
}

template <class T>
void TransformerCudaT<T>::fused_collect_routing() const {
  FusedMoeState& F = *fused_;
  WATTMOE_CUDA_CALL(cudaEventSynchronize(F.copied));
  const int64_t N = F.tokens;
  const int k = cfg_.top_k, E = cfg_.num_experts;
  for (int l = 0; l < cfg_.num_layers; ++l) {
    const int m = F.moe_index[size_t(l)];
    if (m < 0) continue;
    Routing& r = host_[size_t(l)].routing;
    r.reset(N, k, E);
    const int32_t* ids = F.host_ids.data() + size_t(m) * size_t(N) * size_t(k);
    std::copy(ids, ids + N * k, r.expert.begin());
    const int32_t* cnt = F.host_counts.data() + size_t(m) * size_t(E);
    std::copy(cnt, cnt + E, r.counts.begin());
  }
  F.pending = false;
}

template std::string TransformerCudaT<float>::fused_moe_unsupported() const;
template std::string TransformerCudaT<bf16>::fused_moe_unsupported() const;
template void TransformerCudaT<float>::set_moe_kernels(MoeKernels);
template void TransformerCudaT<bf16>::set_moe_kernels(MoeKernels);
template const HostRouting& TransformerCudaT<float>::routing(int) const;
template const HostRouting& TransformerCudaT<bf16>::routing(int) const;
template void TransformerCudaT<float>::fused_moe_forward(int);
template void TransformerCudaT<bf16>::fused_moe_forward(int);
template void TransformerCudaT<float>::fused_queue_routing();
template void TransformerCudaT<bf16>::fused_queue_routing();
template void TransformerCudaT<float>::fused_collect_routing() const;
template void TransformerCudaT<bf16>::fused_collect_routing() const;

}  // namespace wattmoe::gpu
