// The MoE transformer on the GPU: the same maths, parameter layout and routing as model/transformer.h (the CPU model
// it mirrors op for op), with weights, gradients and activations in device memory. T is the compute type:
//   TransformerCuda      = TransformerCudaT<float>: training and parity (forward, losses, backward), all fp32.
//   TransformerCudaBf16  = TransformerCudaT<bf16>:  mixed precision, inference and training (rules below).
//
// Precision rules for T = bf16:
//   - Master weights params() are fp32; the forward and backward read a bf16 copy (round to nearest even), refreshed
//     by upload_params and sync_weights() (call it after changing params() on the device, e.g. after an optimiser
//     step).
//   - Activations, dlogits and activation gradients are stored in bf16. Every product and reduction accumulates in
//     fp32 (cuBLAS fp32 compute, fp32 block sums); normalisation statistics, attention probabilities, route weights,
//     their gradients and the host-side routing maths stay fp32.
//   - Gradients: one backward computes each tensor's gradient in bf16 (an fp32-accumulated product rounded once into
//     a zeroed bf16 scratch, grads()), then adds it into the fp32 master gradients master_grads() in fp32. So
//     gradients ACCUMULATE across backward calls in fp32, as for T = float, and an optimiser on fp32 master weights
//     (cuda::adamw_step(params(), master_grads(), …) then sync_weights()) works unchanged.
//   - zero_grads, upload_grads and download_grads act on the fp32 master gradients for both T.
//
// One object owns: the fp32 master weights (device, ParamLayout order — the same flat layout as the CPU buffer, so
// checkpoints and optimiser state carry over unchanged), the fp32 master gradients (allocated, zeroed, on first
// use: an inference-only model holds none), the activations of the last
// forward (what backward needs), dlogits, and optionally a KV cache. Call order for a training step:
//   forward(ids) → nll(targets, scale, true) [or write dlogits() yourself] → [router_aux_losses] → backward(mask)
// Every call queues work on ctx.stream() (a non-blocking stream) and may return before it has run; the download_*
// and upload_* functions synchronise. Touching params()/grads() from another stream or with plain cudaMemcpy needs a
// ctx.sync() first.
//
// Routing runs on the HOST, as on the CPU: each MoE layer's router logits and probabilities are computed on the GPU,
// copied to the host ([N, E], small), and selected by the same code (select_topk, or the RouterSelect policy), then
// renormalised by the arch's rule and dispatched by build_dispatch. So at equal probabilities the routing is
// bit-identical to the CPU model's and every routing policy works unchanged. Backward likewise pulls
// ∂L/∂(route weight) [R] to the host, pushes it through the renormalisation and the softmax there (plus the
// auxiliary losses' drouter), and uploads ∂L/∂(router logits). Cost: one synchronising round trip per MoE layer in
// forward and one in backward (fine for training at our sizes; a decode loop would want the on-device route kernel).
//
// With T = bf16 the host selects on the bf16 probabilities (widened to float), so near-ties may select differently
// from the fp32 model (1 slot in 84 in the parity test's cases).
//
// Fused MoE kernels (T = bf16): after set_moe_kernels(MoeKernels::Fused), every MoE layer runs as one MoeLayerCuda
// forward (ops/moe_cuda.h: router, softmax, the routing policy, permute, grouped SwiGLU GEMMs and combine on the
// device, no host synchronisation) on the model's own bf16 weights. The routing policy of each layer is a block of
// device memory (set_route_policies; plain top-k by default) that every forward reads, so a controller changes it
// between forwards without any re-capture; a forward given a RouterSelect throws. Eligible models
// (fused_moe_unsupported() says why not): bf16, hidden and expert sizes multiples of 8, at most 256 experts. LoRA
// adapters: the experts run with their adapters merged, bf16(W + scale·B·A), rebuilt after the weights change
// (sync_weights); a shared expert (Qwen2-MoE) runs beside the fused layer as on the host path. Differences from the
// host path, within bf16 rounding: the policies rank the fp32 probabilities of the bf16 router logits (the host path
// ranks bf16 probabilities, so near-ties may select differently), the route weights are fp32, and LoRA is merged into
// the weights instead of added. To read the experts in place, the bf16 weight copy stores each MoE layer's experts
// expert-major ([E, I, H] gates, then ups, then downs, then any LoRA factors) and starts every tensor on 16 bytes
// (gpu/moe_fused_cuda.h; ≤ 7 elements of padding per tensor, none when sizes are multiples of 8); the fp32 params()
// and the gradients keep ParamLayout order. So no second copy of the weights exists (but the merged experts of a model
// with adapters); sync_weights() converts tensor by tensor into that layout. Each MoE layer's routing (ids [N, S] with
// −1 in unused slots, weights, counts, probabilities, logits) stays on the device for backward, and ids, weights and
// counts of all layers go to the host in one copy queued at the end of the forward; routing(l) waits for it on first
// use; router_views() and router_aux_losses() bring the probabilities and logits up (one more copy, on demand).
// backward() after a fused forward lays each MoE layer's rows out from that routing, recomputes the experts'
// activations (the forward kept none) and takes the router-logit gradient on the device (cuda::router_backward): no
// host round trip per layer.
//
// Decoding: reset_cache(capacity, batch) then forward_cached(ids [batch, S], S) any number of times; each call runs S
// tokens of each of the batch sequences (in lockstep: all at the same length) at positions cache_length() …
// cache_length() + S − 1 against the cached keys/values (after RoPE and clipping, as KvCache on the CPU; stored in
// T) and appends its own. Logits are those of the batch·S new tokens. With batch 1 the cache is read in place; with
// more, each layer gathers the sequences' cached rows into one contiguous block first. backward() refuses a cached
// forward (as the CPU model does); a plain forward() leaves the cache as it is.
// Slot decoding (continuous batching, model/runner.h): reset_slots(n, capacity) gives n more one-sequence caches;
// forward_slot(s, ids, S) swaps slot s's buffers in as the cache, runs forward_cached (batch 1, read in place) and
// swaps them back, so each slot's sequence decodes exactly as a batch-1 forward_cached would. forward_slots(slots, ids,
// n) decodes one new token of each of n distinct slots in ONE forward, each at its own position: the rows share every
// projection, norm and MoE layer (one fused MoE forward over the n tokens) and differ only in RoPE's position and the
// cache they append to and attend over (cuda::kv_append_rows, cuda::attention_rows_fwd: per-row cache pointers and
// lengths). Its logits equal the n forward_slot calls' within the precision's rounding, not bit for bit (other
// summation orders: the attention kernel, cuBLAS at another M).
// Decode-step graphs: a forward_slots step on the fused MoE kernels (T = bf16, no RouterSelect) issues its launches (26 per
// MoE layer of the Mixtral shape) through ops/cuda/step_graphs.h: per row count n, the first step runs eagerly, the second is
// captured into a CUDA graph, later ones replay it with one launch. Everything that varies between steps is read from
// device memory — the ids, each row's position and cache pointers (row_pos_, row_cache_), the routing policy blocks —
// so a replay runs the step as the eager launches would, bit for bit, and sees knobs changed in between. The graph key
// is n, the fused layer's capacity and slots, and the expert tier; any buffer reallocation (allocation_epoch) forces a
// fresh eager step and capture. Host work stays outside the graph: the id check, uploads, the LoRA merge when stale,
// and the event that routing(l) waits for. set_decode_graphs(false) runs every step eagerly (the comparison).
// Thread-safety: none; one object per Context, used from one thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/expert_quant.h"
#include "model/grad_mask.h"
#include "model/objective.h"
#include "model/params.h"
#include "model/transformer.h"  // RouterSelect, AuxLossValues
#include "moe/dispatch.h"
#include "moe/routing.h"
#include "ops/cuda/context.h"
#include "ops/cuda/step_graphs.h"
#include "ops/moe_route_policy.h"

namespace wattmoe::gpu {

using cuda::bf16;

template <class T>
struct DeviceActs;  // per-layer device activations (device_acts.h)
struct LoraDims;       // the routed experts' LoRA rank and scale (device_acts.h)
struct FusedMoeState;  // the fused MoE layer, its routing outputs and their host copies (moe_fused_cuda.cpp)

// Which code runs the MoE layers of a forward (see the header comment).
enum class MoeKernels { Host, Fused };
const char* moe_kernels_name(MoeKernels k);  // "host", "fused"

// What the host keeps of one layer's routing from the last forward (empty for dense layers): for telemetry, the
// auxiliary losses and backward.
struct HostRouting {
  std::vector<float> logits, probs;  // [N, E]
  std::vector<float> weight;         // [N, k] route weights (0 for unused slots)
  std::vector<float> drouter;        // [N, E] ∂(aux losses)/∂logits, added by router_aux_losses, zeroed by forward
  Routing routing;
  Dispatch dispatch;
  std::vector<float> row_weight;     // after a fused forward, for backward: each dispatch row's weight [R]
  std::vector<int64_t> row_of;       //   and each (token, slot)'s row [N, k] (−1 unused)
  std::vector<int64_t> rows_sorted;  // backward: each token's rows ascending (−1 first), uploaded for sum_rows
};

template <class T>
class TransformerCudaT {
 public:
  TransformerCudaT(ModelConfig c, cuda::Context& ctx);
  ~TransformerCudaT();
  TransformerCudaT(const TransformerCudaT&) = delete;
  TransformerCudaT& operator=(const TransformerCudaT&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }
  cuda::Context& context() { return ctx_; }

  // fp32 master weights, layout order (layout().total() values). upload/download synchronise. After changing
  // params() on the device with T = bf16, call sync_weights() to refresh the bf16 copy the forward reads.
  void upload_params(const float* host);
  void download_params(float* host) const;
  float* params() { return params_.data(); }  // device
  const float* params() const { return params_.data(); }
  // bf16: weights = round(params) (only the tensors that overlap `only`, when given); float: nothing (they are the
  // same). Merged LoRA experts (fused path) are rebuilt on the next forward when an expert or LoRA tensor changed.
  void sync_weights(const std::vector<ParamRange>* only = nullptr);
  // Gradients, layout order. T = float: the fp32 gradients backward accumulates into (== master_grads()).
  // T = bf16: the bf16 gradients of the LAST backward only (scratch, zeroed by each backward; regions of tensors a
  // mask leaves out stay 0), already added into master_grads(); read-only in spirit.
  T* grads();                                  // device
  // fp32 gradients accumulated over backward calls (both T); what an optimiser on the master weights reads.
  float* master_grads();                       // device
  void zero_grads();                           // asynchronous; the fp32 master gradients
  void upload_grads(const float* host);        // synchronises; the fp32 master gradients
  void download_grads(float* host) const;      // synchronises; the fp32 master gradients

  // ids [B, S] on the host (checked against the vocabulary). Positions start at 0. Synchronises once per MoE layer.
  void forward(const int32_t* host_ids, int B, int S, const RouterSelect<float>& select = nullptr);
  // The same forward when no backward follows (evaluation, replayed work): attention keeps no probabilities, so bf16
  // takes the flash kernel where its shape allows (as the KV-cache paths do); logits and routing as forward's within
  // that kernel's rounding (fp32: identical). backward() after it is an Error.
  void forward_inference(const int32_t* host_ids, int B, int S, const RouterSelect<float>& select = nullptr);
  // Decoding with a device KV cache (see the header comment). reset_cache allocates room for `capacity` positions of
  // `batch` sequences (reusing memory when it fits) and empties it. forward_cached needs cache_length() + S ≤
  // capacity; host_ids is [batch, S].
  void reset_cache(int64_t capacity, int batch = 1);
  void forward_cached(const int32_t* host_ids, int S, const RouterSelect<float>& select = nullptr);
  void reset_slots(int slots, int64_t capacity);
  void clear_slot(int slot);
  void forward_slot(int slot, const int32_t* host_ids, int S, const RouterSelect<float>& select = nullptr);
  // One token for each of the n distinct slots slots[0..n) (host_ids[r] for slots[r]), each slot's cache one longer
  // after; logits and routing rows in that order. Error naming the slot when one repeats, does not exist or is full.
  void forward_slots(const int32_t* slots, const int32_t* host_ids, int n, const RouterSelect<float>& select = nullptr);
  int64_t cache_length() const { return cache_len_; }
  int64_t cache_capacity() const { return cache_cap_; }

  int batch() const { return B_; }
  int seq() const { return S_; }
  int64_t tokens() const { return int64_t(B_) * S_; }

  const T* logits() const;                   // device [B·S, V] of the last forward
  // Into `host` (resized; its storage reused while large enough); synchronises (bf16 widened to float).
  void download_logits(std::vector<float>& host) const;
  std::vector<float> download_logits() const {
    std::vector<float> h;
    download_logits(h);
    return h;
  }
  // Device [B·S, V]: what backward reads. forward zeroes it; nll/objective with want_grad overwrite it; or write it.
  T* dlogits();

  // Σ over rows with target ≥ 0 of −log p(target | row) (targets [B·S] on the host, −1 = not scored); with want_grad
  // OVERWRITES dlogits with scale·∂sum/∂logits (0 on unscored rows). Synchronises.
  double nll(const int32_t* host_targets, double scale, bool want_grad);
  // The CPU's objective_loss (model/objective.h) over the last forward: mean loss; with want_grad, dlogits = its
  // gradient. ids are the forward's ids (kept from forward).
  double objective(Objective obj, bool want_grad);

  // moe/aux_losses.h on the host copies of the saved router outputs (as Transformer::router_aux_losses): returns
  // the values and, for non-zero coefficients, adds coef × gradient into each MoE layer's drouter for backward.
  AuxLossValues router_aux_losses(double lb_coef, double z_coef);
  // Views of every MoE layer's host router logits, probabilities and drouter of the last forward (moe/router_view.h);
  // Error after a fused forward.
  RouterViews<float> router_views();

  // Accumulates ∂L/∂params into grads() from dlogits() (and each layer's drouter). Mask semantics as
  // Transformer::backward: unneeded tensors' gradient regions untouched, the pass stops below the lowest needed
  // layer. Synchronises once per MoE layer.
  // T = bf16: the gradients are computed in bf16 into grads(), then added in fp32 into master_grads() (only the
  // tensors the mask needs). Refuses a forward_cached() forward.
  void backward(const GradMask* mask = nullptr);

  // Routing of layer l in the last forward (host; empty vectors for dense layers). After a fused forward the first
  // call waits for the forward's routing copy (one stream synchronisation per forward).
  const HostRouting& routing(int layer) const;
  // Layer l's ∂L/∂(router logits) [N, E] (host) that the next backward adds to what flows back through the route
  // weights: zeroed by forward (empty for dense layers and after a fused forward); router_aux_losses adds into it, and
  // so may the caller (the test-time objectives of adapt/router_objectives.h, gpu/adapt_model_cuda.h).
  std::vector<float>& router_grad(int layer) { return host_.at(size_t(layer)).drouter; }

  // Why MoeLayerCuda cannot run this model's MoE layers (empty when it can; see the header comment).
  std::string fused_moe_unsupported() const;
  // The fused kernels' routing policy of every model layer (ops/moe_route_policy.h; moe/route_policy_block.h makes
  // them from a RoutingSpec), validated here (Error naming the knob), read by the following forwards. Fused only.
  void set_route_policies(const std::vector<MoeRoutePolicy>& per_layer);
  // Fused: forwards without a RouterSelect run the MoE layers on the fused kernels (a forward given a RouterSelect
  // throws). Throws wattmoe::Error naming the reason when the model is not eligible. Host (the default): host routing.
  void set_moe_kernels(MoeKernels k);
  MoeKernels moe_kernels() const { return kernels_; }
  // The routed experts' tier (model/expert_quant.h), on the device: each routed-expert tensor of the fp32 master
  // weights, as they are now, becomes code · scale (ops/cuda/quant_rows.h: the CPU quantiser's values bit for bit),
  // the bf16 copy follows, and with the fused kernels the codes and row scales go to the decode path, whose forwards
  // of at most 8 tokens read them instead of the bf16 experts (half the bytes), while larger forwards, the host path
  // and backward keep the bf16 experts, so every path runs the same model. Both copies stay resident: 1 byte more
  // per expert weight (+ 4 bytes per weight row), beside the bf16 copy's 2 and the fp32 master's 4. With LoRA
  // adapters the decode path reads the merged bf16 experts instead (bf16(code · scale + scale·B·A)). Call after
  // set_moe_kernels. Bf16: nothing is quantised, and the decode path drops any codes it held. Throws, the weights
  // unchanged and the decode path without codes, on a non-finite weight (naming the tensor and row) and, with the
  // fused kernels, when H or I is not a multiple of 16 (16 codes per 16-byte load).
  void quantise_experts(ops::ExpertPrecision p);
  bool last_forward_fused() const { return fused_last_; }
  // Decode-step graphs (see the header comment): on by default.
  void set_decode_graphs(bool on) { graphs_->set_enabled(on); }
  bool decode_graphs_enabled() const { return graphs_->enabled(); }
  const cuda::StepGraphStats& decode_graph_stats() const { return graphs_->stats(); }

 private:
  // rows: a forward_slots forward (B = n rows of S = 1, positions and cache pointers in row_pos_, row_cache_).
  void forward_impl(const int32_t* host_ids, int B, int S, bool cached, const RouterSelect<float>& select,
                    bool rows = false);
  void forward_launches(const RouterSelect<float>& select);  // the stream work of forward_impl, embedding to logits
  void layer_forward(int l, const RouterSelect<float>& select);
  void post_attention(int l, const RouterSelect<float>& select);  // o_proj + residual, then the FFN or MoE block
  void moe_forward(int l, const RouterSelect<float>& select);
  void expert_rows_forward(int l);   // the routed experts over the dispatch rows (moe_block_cuda.cpp)
  void shared_expert_forward(int l); // + the gated shared expert into the MoE output (Qwen2-MoE)
  void fused_moe_forward(int l);     // moe_fused_cuda.cpp
  void fused_merge_lora();           // the LoRA-merged experts of every MoE layer
  void fused_queue_routing();        // end of a fused forward: one copy of every layer's ids, weights, counts to the host
  void fused_routing_queued();       // after it (outside any graph): the event routing(l) waits for, the host flags
  void fused_collect_routing() const;  // waits for that copy, fills host_[l].routing and weight
  void fused_router_to_host();       // the last fused forward's router probabilities and logits into host_
  void fused_rows_for_backward(int l);  // after a fused forward: the layer's rows and expert activations
  void fused_router_backward(int l, const float* drouter, T* dlogits);  // ∂L/∂(router logits) on the device
  // The routed experts whose rows layer l's expert_rows_forward and backward run, and their LoRA dims: after a fused
  // forward of a model with adapters the merged experts that forward ran (lo.merged), else the model's own.
  const std::vector<FfnView<T>>& row_experts(int l, LoraDims& lo) const;
  void layer_backward(int l, bool need_dx_in);
  void moe_backward(int l, bool need_dh);

  ModelConfig cfg_;
  ParamLayout layout_;
  cuda::Context& ctx_;
  cuda::DeviceBuffer<float> params_;
  cuda::DeviceBuffer<T> weights_;            // the bf16 copy (empty for float: params_ serves)
  // Gradients exist only once something asks for them (an inference-only model never allocates them): grads_, and
  // for bf16 the fp32 master gradients master_.
  mutable cuda::DeviceBuffer<T> grads_;
  mutable cuda::DeviceBuffer<float> master_;
  void ensure_grads() const;
  std::vector<cuda::DeviceBuffer<T>> cache_k_, cache_v_;  // per layer [cache_batch_, cache_cap_, kv_dim]
  int64_t cache_cap_ = 0, cache_len_ = 0;
  int cache_batch_ = 1;
  struct SlotCache {  // a slot's cache while it is not swapped in (reset_slots)
    std::vector<cuda::DeviceBuffer<T>> k, v;
    int64_t cap = 0, len = 0;
    int batch = 1;
  };
  std::vector<SlotCache> slots_;
  void swap_cache(SlotCache& s);  // exchanges s with cache_k_, cache_v_, cache_cap_, cache_len_, cache_batch_
  int64_t slot_cap_ = 0;          // every slot's capacity (reset_slots)
  bool rows_ = false;             // the last forward was forward_slots'
  cuda::DeviceBuffer<int32_t> row_pos_;  // forward_slots: each row's position (its slot's length before) [n]
  cuda::DeviceBuffer<T*> row_cache_;     // forward_slots: per layer l, k pointers [n] then v pointers [n] at 2·l·n
  int64_t pos0_ = 0;      // position of the last forward's first token (its cache length before)
  bool cached_ = false;   // whether the last forward used the cache
  bool inference_ = false;  // whether the last forward was forward_inference (no attention probabilities kept)
  // No backward can follow the forward under way (inference or the KV cache): what only backward reads is not kept.
  bool no_backward() const { return inference_ || cached_; }
  ModelView<T> w_;                          // the weights the forward reads
  std::vector<int64_t> woff_;               // bf16: each tensor's offset in weights_ (expert_major_offsets)
  int B_ = 0, S_ = 0;
  std::vector<int32_t> ids_;  // host copy of the last forward's ids
  std::unique_ptr<DeviceActs<T>> acts_;
  mutable std::vector<HostRouting> host_;  // mutable: a fused forward's routing arrives on first read
  MoeKernels kernels_ = MoeKernels::Host;
  bool fused_last_ = false;                // the last forward ran the fused MoE kernels
  std::unique_ptr<FusedMoeState> fused_;
  std::unique_ptr<cuda::StepGraphs> graphs_;  // forward_slots' steps on the fused kernels
  ModelView<T> g_;  // during backward: grads bound with the mask (unneeded tensors null)
};

using TransformerCuda = TransformerCudaT<float>;
using TransformerCudaBf16 = TransformerCudaT<bf16>;

}  // namespace wattmoe::gpu
