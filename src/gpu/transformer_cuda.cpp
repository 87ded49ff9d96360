// TransformerCuda: forward, backward and losses; the MoE block is in moe_block_cuda.cpp, the FFN in ffn_cuda.cpp.
// Every step mirrors Transformer<float> (model/transformer.cpp) op for op; comments there explain the maths.
#include "gpu/transformer_cuda.h"

#include <algorithm>
#include <type_traits>
#include <unordered_map>

#include "core/error.h"
#include "gpu/device_acts.h"
#include "gpu/moe_fused_cuda.h"
#include "model/runner.h"  // check_slot_rows
#include "ops/cuda/dense_ops.h"
#include "ops/rope.h"

namespace wattmoe::gpu {

namespace {

template <class T>
void copy_d2d(Context& ctx, DeviceBuffer<T>& dst, const T* src, int64_t n) {
  dst.resize(size_t(n));
  if (n)
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(dst.data(), src, sizeof(T) * size_t(n), cudaMemcpyDeviceToDevice, ctx.stream()));
}

template <class T>
constexpr bool is_f32 = std::is_same_v<T, float>;

// Attention that keeps no probabilities (the KV-cache paths): the flash forward where its shape allows (bf16), else
// the materialised one. fp32 stays on the materialised path, the GPU's exact twin of the CPU reference.
template <class T>
void attend_no_probs(Context& ctx, const T* q, const T* k, const T* v, T* out, const ops::AttnShape& s, int64_t B) {
  if constexpr (!is_f32<T>) {
    if (cuda::flash_attention_supported(s)) return cuda::attention_fwd_flash(ctx, q, k, v, out, s, B);
  }
  cuda::attention_fwd<T>(ctx, q, k, v, out, nullptr, s, B);
}

}  // namespace

template <class T>
TransformerCudaT<T>::TransformerCudaT(ModelConfig c, cuda::Context& ctx)
    : cfg_(std::move(c)), layout_(ParamLayout::build(cfg_)), ctx_(ctx), acts_(std::make_unique<DeviceActs<T>>()),
      graphs_(std::make_unique<cuda::StepGraphs>()) {
  cfg_.validate("TransformerCuda");
  const size_t n = size_t(layout_.total());
  params_.resize(n), params_.zero(ctx_.stream());
  if constexpr (is_f32<T>) {
    w_ = ModelView<float>::bind(cfg_, layout_, params_.data());
  } else {
    // The bf16 copy keeps each MoE layer's experts expert-major and every tensor 16-byte aligned (what the fused
    // MoE kernels read in place); its padding stays zero.
    int64_t wn = 0;
    woff_ = expert_major_offsets(cfg_, layout_, &wn);
    weights_.resize(size_t(wn)), weights_.zero(ctx_.stream());
    std::unordered_map<int64_t, int64_t> at;
    for (size_t i = 0; i < woff_.size(); ++i) at[layout_.specs()[i].offset] = woff_[i];
    w_ = rebase<T>(ModelView<float>::bind(cfg_, layout_, params_.data()), params_.data(), weights_.data(),
                   [&at](int64_t o) { return at.at(o); });
  }
  acts_->layers.resize(size_t(cfg_.num_layers));
  host_.resize(size_t(cfg_.num_layers));
}

template <class T>
TransformerCudaT<T>::~TransformerCudaT() = default;

template <class T>
void TransformerCudaT<T>::upload_params(const float* host) {
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(params_.data(), host, sizeof(float) * params_.size(), cudaMemcpyHostToDevice,
                                    ctx_.stream()));
  sync_weights();
  ctx_.sync();
}

template <class T>
void TransformerCudaT<T>::sync_weights(const std::vector<ParamRange>* only) {
  const std::vector<ParamSpec>& sp = layout_.specs();
  const auto touched = [&](const ParamSpec& s) {  // the tensor overlaps one of the ranges (all when none given)
    if (!only) return true;
    for (const ParamRange& r : *only)
      if (r.offset < s.offset + s.numel && s.offset < r.offset + r.numel) return true;
    return false;
  };
  if (fused_)  // merged LoRA experts follow the expert and LoRA weights
    for (const ParamSpec& s : sp)
      if ((s.kind == ParamKind::Expert || s.kind == ParamKind::Lora) && touched(s)) {
        fused_->merged_stale = true;
        break;
      }
  if constexpr (!is_f32<T>) {  // layout order → woff_: one run per stretch of tensors that move alike, one launch
    std::vector<cuda::ConvertRun> runs;
    for (size_t i = 0; i < sp.size(); ++i) {
      if (!touched(sp[i])) continue;
      cuda::ConvertRun* last = runs.empty() ? nullptr : &runs.back();
      if (last && sp[i].offset == last->src + last->n && woff_[i] == last->dst + last->n) last->n += sp[i].numel;
      else runs.push_back({sp[i].offset, woff_[i], sp[i].numel});
    }
    cuda::convert_runs<T, float>(ctx_, params_.data(), weights_.data(), runs, false);
  }
}

template <class T>
void TransformerCudaT<T>::download_params(float* host) const {
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(host, params_.data(), sizeof(float) * params_.size(), cudaMemcpyDeviceToHost,
                                    ctx_.stream()));
  ctx_.sync();
}

template <class T>
void TransformerCudaT<T>::ensure_grads() const {
  const size_t n = size_t(layout_.total());
  if (grads_.size() == n) return;
  grads_.resize(n), grads_.zero(ctx_.stream());
  if constexpr (!is_f32<T>) master_.resize(n), master_.zero(ctx_.stream());
}

template <class T>
T* TransformerCudaT<T>::grads() {
  ensure_grads();
  return grads_.data();
}

template <class T>
float* TransformerCudaT<T>::master_grads() {
  ensure_grads();
  if constexpr (is_f32<T>) return grads_.data();
  else return master_.data();
}

template <class T>
void TransformerCudaT<T>::upload_grads(const float* host) {
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(master_grads(), host, sizeof(float) * params_.size(), cudaMemcpyHostToDevice,
                                    ctx_.stream()));
  ctx_.sync();
}

template <class T>
void TransformerCudaT<T>::download_grads(float* host) const {
  ensure_grads();
  const float* g = is_f32<T> ? reinterpret_cast<const float*>(grads_.data()) : master_.data();
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(host, g, sizeof(float) * params_.size(), cudaMemcpyDeviceToHost, ctx_.stream()));
  ctx_.sync();
}

template <class T>
void TransformerCudaT<T>::zero_grads() {
  ensure_grads();
  if constexpr (is_f32<T>) grads_.zero(ctx_.stream());
  else master_.zero(ctx_.stream());
}

template <class T>
const T* TransformerCudaT<T>::logits() const { return acts_->logits.data(); }

template <class T>
void TransformerCudaT<T>::download_logits(std::vector<float>& host) const {
  if constexpr (is_f32<T>) {
    acts_->logits.download(host, ctx_.stream());
  } else {
    DeviceBuffer<float>& f = acts_->f32;  // staging kept between calls: no allocation per decoded token
    f.resize(acts_->logits.size());
    cuda::convert<float, T>(ctx_, acts_->logits.data(), f.data(), int64_t(f.size()));
    f.download(host, ctx_.stream());
  }
}

template <class T>
T* TransformerCudaT<T>::dlogits() { return acts_->dlogits.data(); }

template <class T>
void TransformerCudaT<T>::forward(const int32_t* host_ids, int B, int S, const RouterSelect<float>& select) {
  inference_ = false;
  forward_impl(host_ids, B, S, false, select);
}

template <class T>
void TransformerCudaT<T>::forward_inference(const int32_t* host_ids, int B, int S, const RouterSelect<float>& select) {
  inference_ = true;
  forward_impl(host_ids, B, S, false, select);
}

template <class T>
void TransformerCudaT<T>::reset_cache(int64_t capacity, int batch) {
  WATTMOE_REQUIRE(capacity >= 1, "KV cache capacity must be positive, got {}", capacity);
  WATTMOE_REQUIRE(batch >= 1, "KV cache batch must be positive, got {}", batch);
  const int64_t kvd = cfg_.kv_dim();
  cache_k_.resize(size_t(cfg_.num_layers)), cache_v_.resize(size_t(cfg_.num_layers));
  for (int l = 0; l < cfg_.num_layers; ++l) {  // contents need no zeroing: attention reads positions < length only
    cache_k_[size_t(l)].resize(size_t(batch * capacity * kvd));
    cache_v_[size_t(l)].resize(size_t(batch * capacity * kvd));
  }
  cache_cap_ = capacity, cache_len_ = 0, cache_batch_ = batch;
}

template <class T>
void TransformerCudaT<T>::forward_cached(const int32_t* host_ids, int S, const RouterSelect<float>& select) {
  WATTMOE_REQUIRE(cache_cap_ > 0, "forward_cached before reset_cache");
  WATTMOE_REQUIRE(S >= 1 && cache_len_ + S <= cache_cap_, "sequence of {} tokens exceeds the KV cache ({} of {} used)",
                  S, cache_len_, cache_cap_);
  inference_ = false;
  forward_impl(host_ids, cache_batch_, S, true, select);
  cache_len_ += S;
}

template <class T>
void TransformerCudaT<T>::reset_slots(int slots, int64_t capacity) {
  WATTMOE_REQUIRE(slots >= 1 && capacity >= 1, "KV cache slots: need >= 1 slot of >= 1 position, got {} of {}", slots,
                  capacity);
  const int64_t kvd = cfg_.kv_dim();
  slots_.clear();  // release the old slots first
  slots_.resize(size_t(slots));
  for (SlotCache& s : slots_) {
    s.k.resize(size_t(cfg_.num_layers)), s.v.resize(size_t(cfg_.num_layers));
    for (int l = 0; l < cfg_.num_layers; ++l) s.k[size_t(l)].resize(size_t(capacity * kvd)),
                                              s.v[size_t(l)].resize(size_t(capacity * kvd));
    s.cap = capacity, s.len = 0, s.batch = 1;
  }
  slot_cap_ = capacity;
}

template <class T>
void TransformerCudaT<T>::clear_slot(int slot) {
  WATTMOE_REQUIRE(slot >= 0 && size_t(slot) < slots_.size(), "KV cache slot {} does not exist ({} slots)", slot,
                  slots_.size());
  slots_[size_t(slot)].len = 0;
}

template <class T>
void TransformerCudaT<T>::swap_cache(SlotCache& s) {
  std::swap(cache_k_, s.k), std::swap(cache_v_, s.v), std::swap(cache_cap_, s.cap), std::swap(cache_len_, s.len);
  std::swap(cache_batch_, s.batch);
}

template <class T>
void TransformerCudaT<T>::forward_slot(int slot, const int32_t* host_ids, int S, const RouterSelect<float>& select) {
  WATTMOE_REQUIRE(slot >= 0 && size_t(slot) < slots_.size(), "KV cache slot {} does not exist ({} slots)", slot,
                  slots_.size());
  SlotCache& s = slots_[size_t(slot)];
  swap_cache(s);  // the slot's buffers become the (batch-1) cache; the lockstep cache waits in s
  try {
    forward_cached(host_ids, S, select);
  } catch (...) {
    swap_cache(s);
    throw;
  }
  swap_cache(s);
}

template <class T>
void TransformerCudaT<T>::forward_slots(const int32_t* slots, const int32_t* host_ids, int n,
                                        const RouterSelect<float>& select) {
  check_slot_rows(slots, n, slots_.size());
  const int L = cfg_.num_layers;
  std::vector<int32_t> pos(static_cast<size_t>(n));
  std::vector<T*> ptrs(size_t(2 * L * n));
  for (int r = 0; r < n; ++r) {
    const int slot = slots[r];
    SlotCache& c = slots_[size_t(slot)];
    WATTMOE_REQUIRE(c.len < c.cap, "KV cache slot {} is full ({} positions)", slot, c.cap);
    pos[size_t(r)] = int32_t(c.len);
    for (int l = 0; l < L; ++l)
      ptrs[size_t(2 * l * n + r)] = c.k[size_t(l)].data(), ptrs[size_t((2 * l + 1) * n + r)] = c.v[size_t(l)].data();
  }
  // Pageable host memory: each copy has read its source when cudaMemcpyAsync returns, so pos and ptrs may die.
  row_pos_.upload(pos, ctx_.stream());
  row_cache_.upload(ptrs, ctx_.stream());
  forward_impl(host_ids, n, 1, /*cached=*/true, select, /*rows=*/true);
  for (int r = 0; r < n; ++r) ++slots_[size_t(slots[r])].len;
}

template <class T>
void TransformerCudaT<T>::forward_impl(const int32_t* host_ids, int B, int S, bool cached,
                                       const RouterSelect<float>& select, bool rows) {
  const ModelConfig& c = cfg_;
  WATTMOE_CHECK(B >= 1 && S >= 1);
  const int64_t N = int64_t(B) * S;
  for (int64_t i = 0; i < N; ++i)
    WATTMOE_REQUIRE(host_ids[i] >= 0 && host_ids[i] < c.vocab_size,
                    "input id {} at position {} is outside the vocabulary [0, {})", host_ids[i], i, c.vocab_size);
  const bool fused = kernels_ == MoeKernels::Fused;
  WATTMOE_REQUIRE(!fused || !select,
                  "the fused MoE kernels route by plain top-k: a routing policy needs set_moe_kernels(MoeKernels::Host)");
  if (fused) fused_->prepare(ctx_, N);
  if (fused_) fused_->pending = false;  // a new forward: the last one's routing copy is not read any more
  fused_last_ = fused;
  B_ = B, S_ = S;
  cached_ = cached, rows_ = rows, pos0_ = cached && !rows ? cache_len_ : 0;
  ids_.assign(host_ids, host_ids + N);
  DeviceActs<T>& A = *acts_;
  A.ids.upload(ids_, ctx_.stream());
  // cos/sin of positions 0 .. pos0 + S − 1 (transformers' float32 angles, see ops/rope.h); a position's entry does
  // not depend on the table's length, so a longer table serves shorter sequences. A cache gets its whole capacity.
  const int64_t need = rows ? slot_cap_ : cached ? cache_cap_ : pos0_ + S;
  if (A.rope_len < need) {
    A.rope.upload(ctx_, ops::rope_table(0, need, c.head_dim, c.rope_theta));
    A.rope_len = need;
  }
  // The outputs' sizes, which the host reads (download_logits), are set here: a graph replay runs no host code.
  A.logits.resize(size_t(N * c.vocab_size)), A.dlogits.resize(size_t(N * c.vocab_size));
  // Host routing state: every layer's is rebuilt by this forward (the host MoE path fills its layers as it goes).
  for (int l = 0; l < c.num_layers; ++l)
    if (fused || !c.is_moe_layer(l)) host_[size_t(l)] = HostRouting{};
  if (fused && c.lora_rank > 0 && fused_->merged_stale) fused_merge_lora();
  if (rows && fused) {  // a decode step: replayed as a CUDA graph (see the header comment)
    const FusedMoeState& F = *fused_;
    graphs_->run({N, F.max_tokens, F.slots(), int64_t(F.qprec)}, ctx_.stream(), [&] { forward_launches(select); });
  } else {
    forward_launches(select);
  }
  if (fused) fused_routing_queued();
}

template <class T>
void TransformerCudaT<T>::forward_launches(const RouterSelect<float>& select) {
  const ModelConfig& c = cfg_;
  const int64_t N = tokens(), H = c.hidden_size, V = c.vocab_size;
  DeviceActs<T>& A = *acts_;
  WATTMOE_CHECK(A.logits.size() == size_t(N * V) && A.dlogits.size() == size_t(N * V));  // forward_impl sized them
  A.x.resize(size_t(N * H));
  cuda::embedding_fwd<T>(ctx_, w_.embed, A.ids.data(), A.x.data(), N, H);
  for (int l = 0; l < c.num_layers; ++l) layer_forward(l, select);
  if (fused_last_) fused_queue_routing();  // every layer's expert ids and counts to the host, one copy, no wait
  A.h_final.resize(size_t(N * H)), A.rstd_final.resize(size_t(N));
  cuda::rmsnorm_fwd<T>(ctx_, A.x.data(), w_.final_norm, A.h_final.data(), A.rstd_final.data(), N, H,
                           c.rms_norm_eps);
  cuda::linear_fwd<T>(ctx_, A.h_final.data(), w_.lm_head, nullptr, A.logits.data(), N, H, V);
  A.dlogits.zero(ctx_.stream());
}

template <class T>
void TransformerCudaT<T>::layer_forward(int l, const RouterSelect<float>& select) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  DeviceLayerActs<T>& a = acts_->layers[size_t(l)];
  DeviceActs<T>& A = *acts_;
  const int64_t N = tokens(), H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), S = S_;
  T* x = A.x.data();
  if (!no_backward()) copy_d2d(ctx_, a.x_in, x, N * H);  // the attention norm's input, for backward only
  a.h_attn.resize(size_t(N * H)), a.rstd_attn.resize(size_t(N));
  cuda::rmsnorm_fwd<T>(ctx_, x, w.ln_attn, a.h_attn.data(), a.rstd_attn.data(), N, H, c.rms_norm_eps);

  a.q.resize(size_t(N * qd)), a.k.resize(size_t(N * kvd)), a.v.resize(size_t(N * kvd));
  cuda::linear_fwd<T>(ctx_, a.h_attn.data(), w.wq, w.bq, a.q.data(), N, H, qd);
  cuda::linear_fwd<T>(ctx_, a.h_attn.data(), w.wk, w.bk, a.k.data(), N, H, kvd);
  cuda::linear_fwd<T>(ctx_, a.h_attn.data(), w.wv, w.bv, a.v.data(), N, H, kvd);
  if (c.qk_norm) {  // OLMoE: RMSNorm over the whole projection, before the head split
    copy_d2d(ctx_, a.q_pre, a.q.data(), N * qd), copy_d2d(ctx_, a.k_pre, a.k.data(), N * kvd);
    a.rstd_q.resize(size_t(N)), a.rstd_k.resize(size_t(N));
    cuda::rmsnorm_fwd<T>(ctx_, a.q_pre.data(), w.q_norm, a.q.data(), a.rstd_q.data(), N, qd, c.rms_norm_eps);
    cuda::rmsnorm_fwd<T>(ctx_, a.k_pre.data(), w.k_norm, a.k.data(), a.rstd_k.data(), N, kvd, c.rms_norm_eps);
  }
  if (c.clip_qkv > 0) {  // OLMoE: clamp after the norms, keeping the pre-clamp values for backward
    a.q_clip.resize(size_t(N * qd)), a.k_clip.resize(size_t(N * kvd)), a.v_clip.resize(size_t(N * kvd));
    const float lim = float(c.clip_qkv);
    cuda::clamp_fwd<T>(ctx_, a.q.data(), a.q_clip.data(), lim, N * qd);
    cuda::clamp_fwd<T>(ctx_, a.k.data(), a.k_clip.data(), lim, N * kvd);
    cuda::clamp_fwd<T>(ctx_, a.v.data(), a.v_clip.data(), lim, N * kvd);
  }
  a.att.resize(size_t(N * qd));
  if (rows_) {  // forward_slots: row r at its own position, appended to and attending over its own slot's cache
    cuda::rope_apply_at<T>(ctx_, a.q.data(), N, c.num_heads, c.head_dim, qd, A.rope, row_pos_.data(), false);
    cuda::rope_apply_at<T>(ctx_, a.k.data(), N, c.num_kv_heads, c.head_dim, kvd, A.rope, row_pos_.data(), false);
    T* const* kp = row_cache_.data() + 2 * l * N;
    T* const* vp = kp + N;
    cuda::kv_append_rows<T>(ctx_, a.k.data(), a.v.data(), N, kvd, kp, vp, row_pos_.data());
    cuda::attention_rows_fwd<T>(ctx_, a.q.data(), qd, kp, vp, kvd, row_pos_.data(), a.att.data(), N, c.num_heads,
                                c.num_kv_heads, c.head_dim);
    return post_attention(l, select);
  }
  cuda::rope_apply<T>(ctx_, a.q.data(), B_, S, c.num_heads, c.head_dim, qd, A.rope, pos0_, false);
  cuda::rope_apply<T>(ctx_, a.k.data(), B_, S, c.num_kv_heads, c.head_dim, kvd, A.rope, pos0_, false);
  if (cached_ && B_ == 1) {  // append this call's keys/values, attend over the cache (no probs: backward refuses)
    DeviceBuffer<T>&kc = cache_k_[size_t(l)], &vc = cache_v_[size_t(l)];
    const size_t bytes = sizeof(T) * size_t(N * kvd);
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(kc.data() + pos0_ * kvd, a.k.data(), bytes, cudaMemcpyDeviceToDevice,
                                      ctx_.stream()));
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(vc.data() + pos0_ * kvd, a.v.data(), bytes, cudaMemcpyDeviceToDevice,
                                      ctx_.stream()));
    const ops::AttnShape sh{S, pos0_ + S, pos0_, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    attend_no_probs<T>(ctx_, a.q.data(), kc.data(), vc.data(), a.att.data(), sh, 1);
  } else if (cached_) {
    // B streams in lockstep: sequence b's cache rows are [b·cap, b·cap + length). Append each sequence's S rows, then
    // gather every sequence's pos0 + S rows into contiguous blocks (the layout attention reads) and attend.
    DeviceBuffer<T>&kc = cache_k_[size_t(l)], &vc = cache_v_[size_t(l)];
    const int64_t Tk = pos0_ + S;
    const size_t row = sizeof(T) * size_t(kvd), cap = size_t(cache_cap_) * row;
    for (auto [cache, fresh] : {std::pair{&kc, &a.k}, std::pair{&vc, &a.v}})
      WATTMOE_CUDA_CALL(cudaMemcpy2DAsync(cache->data() + pos0_ * kvd, cap, fresh->data(), size_t(S) * row,
                                          size_t(S) * row, size_t(B_), cudaMemcpyDeviceToDevice, ctx_.stream()));
    A.kv_gather.resize(size_t(2 * B_ * Tk * kvd));
    T *kg = A.kv_gather.data(), *vg = kg + B_ * Tk * kvd;
    for (auto [dst, cache] : {std::pair{kg, &kc}, std::pair{vg, &vc}})
      WATTMOE_CUDA_CALL(cudaMemcpy2DAsync(dst, size_t(Tk) * row, cache->data(), cap, size_t(Tk) * row, size_t(B_),
                                          cudaMemcpyDeviceToDevice, ctx_.stream()));
    const ops::AttnShape sh{S, Tk, pos0_, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    attend_no_probs<T>(ctx_, a.q.data(), kg, vg, a.att.data(), sh, B_);
  } else if (inference_) {  // no backward follows: no probabilities to keep
    const ops::AttnShape sh{S, S, 0, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    attend_no_probs<T>(ctx_, a.q.data(), a.k.data(), a.v.data(), a.att.data(), sh, B_);
  } else {
    a.probs.resize(size_t(int64_t(B_) * c.num_heads * S * S));
    const ops::AttnShape sh{S, S, 0, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    cuda::attention_fwd<T>(ctx_, a.q.data(), a.k.data(), a.v.data(), a.att.data(), a.probs.data(), sh, B_);
  }
  post_attention(l, select);
}

template <class T>
void TransformerCudaT<T>::post_attention(int l, const RouterSelect<float>& select) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  DeviceLayerActs<T>& a = acts_->layers[size_t(l)];
  DeviceActs<T>& A = *acts_;
  const int64_t N = tokens(), H = c.hidden_size, qd = c.q_dim();
  T* x = A.x.data();
  // x += o_proj(att): the projection into x_mid's buffer, then x + it (one rounding, as on the CPU), kept in x_mid
  // (the ffn norm's input, for backward) and x; with no backward to follow, added into x alone.
  a.x_mid.resize(size_t(N * H));
  cuda::linear_fwd<T>(ctx_, a.att.data(), w.wo, nullptr, a.x_mid.data(), N, qd, H);
  if (no_backward()) {
    cuda::axpy<T>(ctx_, 1.f, a.x_mid.data(), x, N * H);  // x + o, the same bits as o + x
  } else {
    cuda::axpy<T>(ctx_, 1.f, x, a.x_mid.data(), N * H);
    WATTMOE_CUDA_CALL(cudaMemcpyAsync(x, a.x_mid.data(), sizeof(T) * size_t(N * H), cudaMemcpyDeviceToDevice,
                                      ctx_.stream()));
  }

  a.h_ffn.resize(size_t(N * H)), a.rstd_ffn.resize(size_t(N));
  cuda::rmsnorm_fwd<T>(ctx_, x, w.ln_ffn, a.h_ffn.data(), a.rstd_ffn.data(), N, H, c.rms_norm_eps);
  if (w.moe) {
    if (fused_last_) fused_moe_forward(l);  // adds the MoE output into x
    else moe_forward(l, select);            // adds the MoE output into x
  } else {
    const int64_t I = c.intermediate_size;
    a.shared.g.resize(size_t(N * I)), a.shared.u.resize(size_t(N * I)), a.shared.a.resize(size_t(N * I));
    a.shared.y.resize(size_t(N * H));
    ffn_fwd(ctx_, w.dense, a.h_ffn.data(), N, H, I, a.shared.g.data(), a.shared.u.data(), a.shared.a.data(),
            a.shared.y.data(), {}, A.scratch);
    cuda::axpy<T>(ctx_, 1.f, a.shared.y.data(), x, N * H);
  }
}

template <class T>
double TransformerCudaT<T>::nll(const int32_t* host_targets, double scale, bool want_grad) {
  const int64_t N = tokens(), V = cfg_.vocab_size;
  WATTMOE_CHECK(N > 0, "nll before forward");
  acts_->targets.upload(host_targets, size_t(N), ctx_.stream());
  return cuda::nll_loss<T>(ctx_, acts_->logits.data(), acts_->targets.data(), N, V,
                               want_grad ? acts_->dlogits.data() : nullptr, scale);
}

template <class T>
double TransformerCudaT<T>::objective(Objective obj, bool want_grad) {
  const int64_t N = tokens(), V = cfg_.vocab_size;
  WATTMOE_CHECK(N > 0, "objective before forward");
  if (obj == Objective::Entropy)
    return cuda::entropy_loss<T>(ctx_, acts_->logits.data(), N, V, want_grad ? acts_->dlogits.data() : nullptr,
                                     1.0 / double(N)) / double(N);
  WATTMOE_REQUIRE(S_ >= 2, "the nll objective needs sequences of at least 2 tokens, got {}", S_);
  std::vector<int32_t> targets(size_t(N), -1);
  for (int b = 0; b < B_; ++b)
    for (int s = 0; s + 1 < S_; ++s) targets[size_t(b) * S_ + s] = ids_[size_t(b) * S_ + s + 1];
  const double count = double(B_) * (S_ - 1);
  return nll(targets.data(), 1.0 / count, want_grad) / count;
}

template <class T>
void TransformerCudaT<T>::backward(const GradMask* mask) {
  const ModelConfig& c = cfg_;
  const int64_t N = tokens(), H = c.hidden_size;
  WATTMOE_CHECK(N > 0, "backward before forward");
  WATTMOE_REQUIRE(!cached_, "backward through a KV-cached forward is not supported");
  WATTMOE_REQUIRE(!inference_, "backward after forward_inference (it keeps no attention probabilities): use forward");
  WATTMOE_CHECK(!mask || mask->needs.size() == layout_.specs().size(), "gradient mask has {} entries for {} tensors",
                mask ? mask->needs.size() : 0, layout_.specs().size());
  if (mask && !mask->any()) return;
  DeviceActs<T>& A = *acts_;
  ensure_grads();
  if constexpr (!is_f32<T>) grads_.zero(ctx_.stream());  // this pass's bf16 gradients, added into master_ below
  g_ = rebase<T>(ModelView<float>::bind(c, layout_, params_.data(), mask), params_.data(), grads_.data());
  const int lowest = mask ? mask->lowest_layer(layout_) : -1;
  const bool into_layers = lowest < c.num_layers;

  A.dx.resize(size_t(N * H)), A.dx.zero(ctx_.stream());  // ∂L/∂(residual stream)
  DeviceBuffer<T>& dh = A.dh_top;
  dh.resize(size_t(N * H)), dh.zero(ctx_.stream());
  const bool need_dh = into_layers || g_.final_norm;
  cuda::linear_bwd<T>(ctx_, A.h_final.data(), w_.lm_head, A.dlogits.data(), need_dh ? dh.data() : nullptr,
                          g_.lm_head, nullptr, N, H, c.vocab_size);
  if (need_dh) {
    cuda::rmsnorm_bwd<T>(ctx_, A.x.data(), w_.final_norm, A.rstd_final.data(), dh.data(),
                             into_layers ? A.dx.data() : nullptr, g_.final_norm, N, H);
    for (int l = c.num_layers - 1; l >= std::max(lowest, 0); --l) layer_backward(l, l > lowest);
    if (g_.embed && lowest < 0) cuda::embedding_bwd<T>(ctx_, A.ids.data(), A.dx.data(), g_.embed, N, H);
  }
  if constexpr (!is_f32<T>) {  // master += widen(grads) over the needed tensors, contiguous runs merged, one launch
    std::vector<cuda::ConvertRun> runs;
    for (const ParamSpec& s : layout_.specs()) {
      if (mask && !mask->need(s, layout_)) continue;
      if (!runs.empty() && runs.back().src + runs.back().n == s.offset) runs.back().n += s.numel;
      else runs.push_back({s.offset, s.offset, s.numel});
    }
    cuda::convert_runs<float, T>(ctx_, grads_.data(), master_.data(), runs, true);
  }
}

template <class T>
void TransformerCudaT<T>::layer_backward(int l, bool need_dx_in) {
  const ModelConfig& c = cfg_;
  const LayerView<T>& w = w_.layers[size_t(l)];
  const LayerView<T>& g = g_.layers[size_t(l)];
  DeviceActs<T>& A = *acts_;
  DeviceLayerActs<T>& a = A.layers[size_t(l)];
  const int64_t N = tokens(), H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), S = S_;
  const bool need_qkv = need_dx_in || g.ln_attn || g.wq || g.wk || g.wv || g.bq || g.bk || g.bv || g.q_norm || g.k_norm;
  const bool need_attn = need_qkv || g.wo;
  const bool need_dh_ffn = need_attn || g.ln_ffn;

  DeviceBuffer<T>& dh = A.dh;  // ∂L/∂(normed FFN input), then ∂L/∂h_attn
  dh.resize(size_t(N * H)), dh.zero(ctx_.stream());
  if (w.moe) {
    moe_backward(l, need_dh_ffn);
  } else if (need_dh_ffn || any_grad(g.dense)) {
    ffn_bwd(ctx_, w.dense, g.dense, a.h_ffn.data(), N, H, c.intermediate_size, a.shared.g.data(), a.shared.u.data(),
            a.shared.a.data(), A.dx.data(), need_dh_ffn ? dh.data() : nullptr, {}, A.scratch);
  }
  if (!need_dh_ffn) return;
  cuda::rmsnorm_bwd<T>(ctx_, a.x_mid.data(), w.ln_ffn, a.rstd_ffn.data(), dh.data(),
                           need_attn ? A.dx.data() : nullptr, g.ln_ffn, N, H);
  if (!need_attn) return;

  DeviceBuffer<T>& datt = A.datt;
  if (need_qkv) datt.resize(size_t(N * qd)), datt.zero(ctx_.stream());
  cuda::linear_bwd<T>(ctx_, a.att.data(), w.wo, A.dx.data(), need_qkv ? datt.data() : nullptr, g.wo, nullptr, N,
                          qd, H);
  if (!need_qkv) return;
  A.dq.resize(size_t(N * qd)), A.dk.resize(size_t(N * kvd)), A.dv.resize(size_t(N * kvd));
  A.dq.zero(ctx_.stream()), A.dk.zero(ctx_.stream()), A.dv.zero(ctx_.stream());
  const ops::AttnShape sh{S, S, 0, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
  cuda::attention_bwd<T>(ctx_, a.q.data(), a.k.data(), a.v.data(), a.probs.data(), datt.data(), A.dq.data(),
                             A.dk.data(), A.dv.data(), sh, B_);
  cuda::rope_apply<T>(ctx_, A.dq.data(), B_, S, c.num_heads, c.head_dim, qd, acts_->rope, 0, true);
  cuda::rope_apply<T>(ctx_, A.dk.data(), B_, S, c.num_kv_heads, c.head_dim, kvd, acts_->rope, 0, true);
  if (c.clip_qkv > 0) {  // clamp passes the gradient only inside [-clip, clip]
    const float lim = float(c.clip_qkv);
    cuda::clamp_bwd<T>(ctx_, a.q_clip.data(), lim, A.dq.data(), N * qd);
    cuda::clamp_bwd<T>(ctx_, a.k_clip.data(), lim, A.dk.data(), N * kvd);
    cuda::clamp_bwd<T>(ctx_, a.v_clip.data(), lim, A.dv.data(), N * kvd);
  }
  if (c.qk_norm) {  // dq ← ∂L/∂q_pre (rmsnorm_bwd accumulates, so into zeroed buffers, then swapped in)
    A.dq_pre.resize(size_t(N * qd)), A.dk_pre.resize(size_t(N * kvd));
    A.dq_pre.zero(ctx_.stream()), A.dk_pre.zero(ctx_.stream());
    cuda::rmsnorm_bwd<T>(ctx_, a.q_pre.data(), w.q_norm, a.rstd_q.data(), A.dq.data(), A.dq_pre.data(), g.q_norm,
                             N, qd);
    cuda::rmsnorm_bwd<T>(ctx_, a.k_pre.data(), w.k_norm, a.rstd_k.data(), A.dk.data(), A.dk_pre.data(), g.k_norm,
                             N, kvd);
    std::swap(A.dq, A.dq_pre), std::swap(A.dk, A.dk_pre);
  }
  dh.zero(ctx_.stream());
  T* dha = need_dx_in || g.ln_attn ? dh.data() : nullptr;  // ∂L/∂h_attn
  cuda::linear_bwd<T>(ctx_, a.h_attn.data(), w.wq, A.dq.data(), dha, g.wq, g.bq, N, H, qd);
  cuda::linear_bwd<T>(ctx_, a.h_attn.data(), w.wk, A.dk.data(), dha, g.wk, g.bk, N, H, kvd);
  cuda::linear_bwd<T>(ctx_, a.h_attn.data(), w.wv, A.dv.data(), dha, g.wv, g.bv, N, H, kvd);
  if (dha)
    cuda::rmsnorm_bwd<T>(ctx_, a.x_in.data(), w.ln_attn, a.rstd_attn.data(), dh.data(),
                             need_dx_in ? A.dx.data() : nullptr, g.ln_attn, N, H);
}

template class TransformerCudaT<float>;
template class TransformerCudaT<bf16>;

}  // namespace wattmoe::gpu
