// The fused MoE path of TransformerCudaT<bf16> (gpu/transformer_cuda.h, "Fused MoE kernels"): eligibility, the
// expert-major weight layout, the routing policy blocks, one MoeLayerCuda forward per MoE layer (on the LoRA-merged
// experts when the model has adapters; the shared expert beside it), the routing kept per layer and copied to the
// host once per forward, and what backward needs after such a forward (the rows laid out from the device routing, the
// router-logit gradient on the device).
#include "gpu/moe_fused_cuda.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"
#include "gpu/device_acts.h"
#include "gpu/transformer_cuda.h"
#include "model/expert_quant.h"
#include "ops/cuda/dense_ops.h"
#include "ops/cuda/moe_rows.h"
#include "ops/cuda/quant_rows.h"
#include "ops/moe_route_policy_check.h"

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
  shape.max_slots = c.top_k;
  moe_index.assign(size_t(c.num_layers), -1);
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) moe_index[size_t(l)] = moe_layers++;
  policies.assign(size_t(moe_layers), MoeRoutePolicy{});  // plain top-k with the model's k
  WATTMOE_CUDA_CALL(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
}

FusedMoeState::~FusedMoeState() {
  if (copied) cudaEventDestroy(copied);
}

void FusedMoeState::set_policies(const std::vector<MoeRoutePolicy>& per_model_layer) {
  WATTMOE_CHECK(per_model_layer.size() == moe_index.size(), "{} policy blocks for {} layers", per_model_layer.size(),
                moe_index.size());
  std::vector<MoeRoutePolicy> p;
  int S = shape.max_slots;
  for (size_t l = 0; l < moe_index.size(); ++l) {
    if (moe_index[l] < 0) continue;
    p.push_back(per_model_layer[l]);
    S = std::max(S, std::min(route_policy_k(p.back(), shape.top_k), shape.experts));
  }
  for (const MoeRoutePolicy& b : p) validate_route_policy(b, shape.experts, shape.top_k, S);
  if (S > shape.max_slots) shape.max_slots = S, layer.reset();  // more slots per token: a new layer (prepare)
  policies = std::move(p);
  policies_dirty = true;
}

void FusedMoeState::prepare(cuda::Context& ctx, int64_t N) {
  WATTMOE_REQUIRE(N <= (1 << 30), "fused MoE forward of {} tokens: too many", N);
  const size_t nid = size_t(moe_layers) * size_t(N) * size_t(slots());
  const size_t nprob = size_t(moe_layers) * size_t(N) * size_t(shape.experts);
  const size_t ncnt = size_t(moe_layers) * size_t(shape.experts);
  if (!(layer && N <= max_tokens && nid <= host_ids.size() && nprob <= probs.size() && ncnt <= host_counts.size())) {
    ctx.sync();  // the old workspace and host arrays may still be in use by queued work
    if (!layer || N > max_tokens) {
      MoeCudaOptions opt;
      opt.name = "model.moe";  // one layer object serves every MoE layer
      layer.reset();
      layer = std::make_unique<MoeLayerCuda>(shape, int(std::max<int64_t>(N, max_tokens)), opt);
      max_tokens = int(std::max<int64_t>(N, max_tokens));
    }
    ids.resize(std::max(ids.size(), nid)), weights.resize(std::max(weights.size(), nid));
    probs.resize(std::max(probs.size(), nprob)), logits.resize(std::max(logits.size(), nprob));
    counts.resize(ncnt);
    host_ids.resize(std::max(host_ids.size(), nid)), host_weights.resize(std::max(host_weights.size(), nid));
    host_counts.resize(ncnt);
  }
  if (policies_dirty) {
    device_policies.upload(policies, ctx.stream());  // `policies` outlives the copy: it is this object's
    policies_dirty = false;
  }
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
void TransformerCudaT<T>::quantise_experts(ops::ExpertPrecision p) {
  if (fused_) fused_->qprec = ops::ExpertPrecision::Bf16;
  if (p == ops::ExpertPrecision::Bf16) return;
  WATTMOE_REQUIRE(!fused_ || (cfg_.hidden_size % 16 == 0 && cfg_.moe_intermediate_size % 16 == 0),
                  "--expert-precision {}: the fused decode kernels read 16 codes per load and need hidden size {} and "
                  "expert width {} to be multiples of 16 (use --moe-kernels host, or bf16 experts)",
                  ops::expert_precision_name(p), cfg_.hidden_size, cfg_.moe_intermediate_size);
  const std::vector<ExpertQuantSlot> slots = expert_quant_slots(cfg_, layout_);
  int64_t n_codes = 0, n_scales = 0;
  for (const ExpertQuantSlot& q : slots)
    n_codes = std::max(n_codes, q.code_offset + q.spec->numel),
    n_scales = std::max(n_scales, q.scale_offset + q.spec->shape[0]);
  if (fused_) fused_->qcodes.resize(size_t(n_codes)), fused_->qscales.resize(size_t(n_scales));
  std::vector<cuda::QuantRowsJob> jobs;
  for (const ExpertQuantSlot& q : slots)
    jobs.push_back({params_.data() + q.spec->offset, fused_ ? fused_->qcodes.data() + q.code_offset : nullptr,
                    fused_ ? fused_->qscales.data() + q.scale_offset : nullptr, q.spec->shape[0], q.spec->shape[1]});
  const std::vector<int64_t> bad = cuda::first_nonfinite_rows(ctx_, jobs);
  for (size_t i = 0; i < bad.size(); ++i)
    WATTMOE_REQUIRE(bad[i] < 0, "{}: row {} holds a NaN or an infinity: cannot quantise a non-finite weight",
                    slots[i].spec->name, bad[i]);
  cuda::fake_quantise_rows(ctx_, jobs, p);
  const std::vector<ParamRange> ranges = expert_param_ranges(layout_);
  sync_weights(&ranges);
  ctx_.sync();
  if (fused_) fused_->qprec = p;
}

template <class T>
void TransformerCudaT<T>::set_route_policies(const std::vector<MoeRoutePolicy>& per_layer) {
  WATTMOE_REQUIRE(fused_ != nullptr && kernels_ == MoeKernels::Fused,
                  "routing policy blocks are for the fused MoE kernels: set_moe_kernels(MoeKernels::Fused) first");
  fused_->set_policies(per_layer);
}

template <class T>
const HostRouting& TransformerCudaT<T>::routing(int layer) const {
  if (fused_ && fused_->pending) fused_collect_routing();
  return host_[size_t(layer)];
}

template <class T>
void TransformerCudaT<T>::fused_merge_lora() {
  if constexpr (std::is_same_v<T, bf16>) {
    const ModelConfig& c = cfg_;
    FusedMoeState& F = *fused_;
    const int64_t H = c.hidden_size, I = c.moe_intermediate_size, E = c.num_experts, r = c.lora_rank;
    const int64_t m = I * H;
    F.merged.resize(size_t(F.moe_layers * 3 * E * m));
    const ModelView<float> p = ModelView<float>::bind(c, layout_, params_.data());  // fp32 master weights
    // W' = W + scale·B·A, [out, in], rounded to bf16 once: gate and up [I, H] in one call, down [H, I] in another.
    std::vector<cuda::LoraMergeItem> gate_up, down;
    for (int l = 0; l < c.num_layers; ++l) {
      const int64_t ml = F.moe_index[size_t(l)];
      if (ml < 0) continue;
      for (int64_t e = 0; e < E; ++e) {
        const FfnView<float>& x = p.layers[size_t(l)].experts[size_t(e)];
        const auto to = [&](int j) { return F.merged.data() + ((ml * 3 + j) * E + e) * m; };
        gate_up.push_back({x.gate, x.gate_A, x.gate_B, to(0)});
        gate_up.push_back({x.up, x.up_A, x.up_B, to(1)});
        down.push_back({x.down, x.down_A, x.down_B, to(2)});
      }
    }
    cuda::lora_merge(ctx_, gate_up, I, H, r, float(c.lora_scale));
    cuda::lora_merge(ctx_, down, H, I, r, float(c.lora_scale));
    F.merged_experts.assign(size_t(F.moe_layers), {});
    for (int l = 0; l < c.num_layers; ++l) {
      const int64_t ml = F.moe_index[size_t(l)];
      if (ml < 0) continue;
      std::vector<FfnView<bf16>>& v = F.merged_experts[size_t(ml)];
      v = w_.layers[size_t(l)].experts;  // the factors
      for (int64_t e = 0; e < E; ++e) {
        const auto at = [&](int j) { return F.merged.data() + ((ml * 3 + j) * E + e) * m; };
        v[size_t(e)].gate = at(0), v[size_t(e)].up = at(1), v[size_t(e)].down = at(2);
      }
    }
    F.merged_stale = false;
  }
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
    const int64_t N = tokens(), H = c.hidden_size, E = c.num_experts, S = F.slots();
    const int64_t m = F.moe_index[size_t(l)];
    WATTMOE_CHECK(m >= 0 && N <= F.max_tokens);
    const void *gate = w.experts[0].gate, *up = w.experts[0].up, *down = w.experts[0].down;
    if (c.lora_rank > 0) {  // the experts with their adapters merged in (forward_impl rebuilds them when stale)
      const int64_t block = E * int64_t(c.moe_intermediate_size) * H;
      const bf16* merged = F.merged.data() + m * 3 * block;
      gate = merged, up = merged + block, down = merged + 2 * block;
    }
    F.layer->use_device_weights(w.router, gate, up, down);
    if (F.qprec != ops::ExpertPrecision::Bf16 && c.lora_rank == 0) {  // the decode path reads the quantised experts
      const int64_t EIH = E * int64_t(c.moe_intermediate_size) * H, EI = E * int64_t(c.moe_intermediate_size);
      const uint8_t* q = F.qcodes.data() + m * 3 * EIH;
      const float* s = F.qscales.data() + m * (2 * EI + E * H);
      F.layer->use_device_quantised_experts(F.qprec, q, q + EIH, q + 2 * EIH, s, s + EI, s + 2 * EI);
    } else {
      F.layer->use_device_quantised_experts(ops::ExpertPrecision::Bf16, nullptr, nullptr, nullptr, nullptr, nullptr,
                                            nullptr);
    }
    F.layer->use_route_policy(F.device_policies.data() + m);
    A.moe_out.resize(size_t(N * H));
    F.layer->forward(acts_->layers[size_t(l)].h_ffn.data(), A.moe_out.data(), int(N), ctx_.stream());
    // This layer's routing into the per-forward arrays (device to device, queued: no host synchronisation).
    const auto copy = [&](void* dst, const void* src, size_t bytes) {
      WATTMOE_CUDA_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx_.stream()));
    };
    copy(F.ids.data() + m * N * S, F.layer->topk_ids(), sizeof(int32_t) * size_t(N * S));
    copy(F.weights.data() + m * N * S, F.layer->topk_weights(), sizeof(float) * size_t(N * S));
    copy(F.counts.data() + m * E, F.layer->expert_counts(), sizeof(int32_t) * size_t(E));
    copy(F.probs.data() + m * N * E, F.layer->router_probs(), sizeof(float) * size_t(N * E));
    copy(F.logits.data() + m * N * E, F.layer->router_logits(), sizeof(bf16) * size_t(N * E));
    shared_expert_forward(l);                        // Qwen2-MoE: + the gated shared expert, into moe_out
    cuda::axpy<T>(ctx_, 1.f, A.moe_out.data(), A.x.data(), N * H);  // x += moe(x), one rounding as the host path
  }
}

template <class T>
void TransformerCudaT<T>::fused_queue_routing() {
  FusedMoeState& F = *fused_;
  const int64_t N = tokens();
  const size_t nid = size_t(F.moe_layers) * size_t(N) * size_t(F.slots());
  const size_t ncnt = size_t(F.moe_layers) * cfg_.num_experts;
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.host_ids.data(), F.ids.data(), sizeof(int32_t) * nid, cudaMemcpyDeviceToHost,
                                    ctx_.stream()));
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.host_weights.data(), F.weights.data(), sizeof(float) * nid,
                                    cudaMemcpyDeviceToHost, ctx_.stream()));
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(F.host_counts.data(), F.counts.data(), sizeof(int32_t) * ncnt,
                                    cudaMemcpyDeviceToHost, ctx_.stream()));
}

template <class T>
void TransformerCudaT<T>::fused_routing_queued() {
  FusedMoeState& F = *fused_;
  WATTMOE_CUDA_CALL(cudaEventRecord(F.copied, ctx_.stream()));
  F.tokens = tokens(), F.pending = true, F.router_on_host = false;
}

template <class T>
void TransformerCudaT<T>::fused_collect_routing() const {
  FusedMoeState& F = *fused_;
  WATTMOE_CUDA_CALL(cudaEventSynchronize(F.copied));
  const int64_t N = F.tokens;
  const int S = F.slots(), E = cfg_.num_experts;
  for (int l = 0; l < cfg_.num_layers; ++l) {
    const int m = F.moe_index[size_t(l)];
    if (m < 0) continue;
    HostRouting& hr = host_[size_t(l)];
    Routing& r = hr.routing;
    r.reset(N, S, E);
    const size_t at = size_t(m) * size_t(N) * size_t(S);
    std::copy(F.host_ids.data() + at, F.host_ids.data() + at + N * S, r.expert.begin());
    const int32_t* cnt = F.host_counts.data() + size_t(m) * size_t(E);
    std::copy(cnt, cnt + E, r.counts.begin());
    hr.weight.assign(F.host_weights.data() + at, F.host_weights.data() + at + N * S);
  }
  F.pending = false;
}

template <class T>
void TransformerCudaT<T>::fused_router_to_host() {
  if constexpr (std::is_same_v<T, bf16>) {
    FusedMoeState& F = *fused_;
    if (F.pending) fused_collect_routing();
    if (F.router_on_host) return;
    const int64_t N = F.tokens, E = cfg_.num_experts, n = int64_t(F.moe_layers) * N * E;
    std::vector<float> probs(static_cast<size_t>(n));
    std::vector<uint16_t> logits(static_cast<size_t>(n));
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(probs.data(), F.probs.data(), sizeof(float) * size_t(n), cudaMemcpyDeviceToHost,
                                      ctx_.stream()));
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(logits.data(), F.logits.data(), sizeof(uint16_t) * size_t(n),
                                      cudaMemcpyDeviceToHost, ctx_.stream()));
    ctx_.sync();
    for (int l = 0; l < cfg_.num_layers; ++l) {
      const int m = F.moe_index[size_t(l)];
      if (m < 0) continue;
      HostRouting& hr = host_[size_t(l)];
      const size_t at = size_t(m) * size_t(N * E);
      hr.probs.assign(probs.begin() + int64_t(at), probs.begin() + int64_t(at + N * E));
      hr.logits.resize(size_t(N * E));
      for (int64_t i = 0; i < N * E; ++i) hr.logits[size_t(i)] = bf16_to_f32(logits[at + size_t(i)]);
      hr.drouter.assign(size_t(N * E), 0.f);
    }
    F.router_on_host = true;
  }
}

template <class T>
void TransformerCudaT<T>::fused_rows_for_backward(int l) {
  routing(l);  // the forward's routing copy has arrived
  HostRouting& hr = host_[size_t(l)];
  DeviceLayerActs<T>& a = acts_->layers[size_t(l)];
  const int64_t N = tokens();
  const int S = hr.routing.k;
  hr.dispatch = build_dispatch(hr.routing);
  const Dispatch& d = hr.dispatch;
  const int64_t R = d.rows();
  hr.row_weight.resize(size_t(R));
  hr.row_of.assign(size_t(N * S), -1);
  for (int64_t r = 0; r < R; ++r) {
    const size_t p = size_t(d.token[r]) * S + d.slot[r];
    hr.row_weight[size_t(r)] = hr.weight[p];
    hr.row_of[p] = r;
  }
  // hr keeps the host arrays alive until the next forward, well after these copies.
  a.row_token.upload(d.token, ctx_.stream());
  a.row_weight.upload(hr.row_weight, ctx_.stream());
  a.row_of.upload(hr.row_of, ctx_.stream());
  expert_rows_forward(l);
}

template <class T>
const std::vector<FfnView<T>>& TransformerCudaT<T>::row_experts(int l, LoraDims& lo) const {
  lo = {cfg_.lora_scale, cfg_.lora_rank};
  if constexpr (std::is_same_v<T, bf16>) {
    if (fused_last_ && cfg_.lora_rank > 0 && !fused_->merged_stale) {  // what the fused forward ran
      lo.merged = true;
      return fused_->merged_experts[size_t(fused_->moe_index[size_t(l)])];
    }
  }
  return w_.layers[size_t(l)].experts;
}

template <class T>
void TransformerCudaT<T>::fused_router_backward(int l, const float* drouter, T* dlogits) {
  FusedMoeState& F = *fused_;
  DeviceActs<T>& A = *acts_;
  const int64_t N = tokens(), E = cfg_.num_experts, S = F.slots(), m = F.moe_index[size_t(l)];
  cuda::router_backward<T>(ctx_, F.ids.data() + m * N * S, F.probs.data() + m * N * E, F.weights.data() + m * N * S,
                           A.layers[size_t(l)].row_of.data(), A.dweight_rows.data(), drouter, cfg_.norm_topk_prob, N,
                           int(S), int(E), dlogits);
}

#define INST(T)                                                                              \
  template std::string TransformerCudaT<T>::fused_moe_unsupported() const;                    \
  template void TransformerCudaT<T>::set_moe_kernels(MoeKernels);                             \
  template void TransformerCudaT<T>::set_route_policies(const std::vector<MoeRoutePolicy>&);  \
  template void TransformerCudaT<T>::quantise_experts(ops::ExpertPrecision);                \
  template const HostRouting& TransformerCudaT<T>::routing(int) const;                        \
  template void TransformerCudaT<T>::fused_merge_lora();                                      \
  template void TransformerCudaT<T>::fused_moe_forward(int);                                  \
  template void TransformerCudaT<T>::fused_queue_routing();                                   \
  template void TransformerCudaT<T>::fused_routing_queued();                                  \
  template void TransformerCudaT<T>::fused_collect_routing() const;                           \
  template void TransformerCudaT<T>::fused_router_to_host();                                  \
  template void TransformerCudaT<T>::fused_rows_for_backward(int);                            \
  template void TransformerCudaT<T>::fused_router_backward(int, const float*, T*);            \
  template const std::vector<FfnView<T>>& TransformerCudaT<T>::row_experts(int, LoraDims&) const;
INST(float)
INST(bf16)
#undef INST

}  // namespace wattmoe::gpu
