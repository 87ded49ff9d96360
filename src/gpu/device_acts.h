// Internal to gpu/*_cuda.cpp: the device activations of one forward (mirroring LayerActs of model/transformer.h),
// weight views on device buffers of any element type, and the SwiGLU FFN (+ LoRA) over device rows. T is the compute
// type (float or bf16); saved normalisation statistics and attention probabilities are fp32 (cuda/dense_ops.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/params.h"
#include "ops/cuda/context.h"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::gpu {

using cuda::bf16;
using cuda::Context;
using cuda::DeviceBuffer;

template <class T>
struct DeviceFfnActs {  // g, u, a [n, I]; y [n, H]
  DeviceBuffer<T> g, u, a, y;
};

template <class T>
struct DeviceLayerActs {
  DeviceBuffer<T> x_in, h_attn;
  DeviceBuffer<float> rstd_attn;
  DeviceBuffer<T> q_pre, k_pre;
  DeviceBuffer<float> rstd_q, rstd_k;
  DeviceBuffer<T> q_clip, k_clip, v_clip;
  DeviceBuffer<T> q, k, v, att;
  DeviceBuffer<float> probs;                 // [B, nh, S, S]
  DeviceBuffer<T> x_mid, h_ffn;
  DeviceBuffer<float> rstd_ffn;
  DeviceBuffer<T> router_logits, router_probs;  // [N, E]
  DeviceBuffer<int32_t> row_token;   // [R] source token of each dispatch row
  DeviceBuffer<float> row_weight;    // [R] route weight of each row
  DeviceBuffer<int64_t> row_of;      // [N, k] row of each (token, slot), −1 unused; slot order
  DeviceBuffer<int64_t> row_of_sorted;  // backward: [N, k] each token's rows ascending (−1 first)
  DeviceBuffer<float> slot_weight;   // [N, k]
  DeviceBuffer<T> xe;                // [R, H] gathered expert inputs
  DeviceFfnActs<T> experts, shared;  // experts: rows in dispatch order; shared: the shared expert or dense MLP
  DeviceBuffer<T> shared_gate_logit; // [N]
};

// Scratch for ffn_bwd / lora (grown on demand; stream order keeps reuse safe).
template <class T>
struct FfnScratch {
  DeviceBuffer<T> da, dg, du, t, dt;
};

template <class T>
struct DeviceActs {
  std::vector<DeviceLayerActs<T>> layers;
  DeviceBuffer<int32_t> ids, targets;
  DeviceBuffer<T> x;                         // residual stream; after the last layer the final norm's input
  DeviceBuffer<T> h_final, logits, dlogits;
  DeviceBuffer<float> rstd_final;
  DeviceBuffer<float> f32;                   // staging for router logits/probs and logits copied to the host (bf16)
  DeviceBuffer<T> kv_gather;                 // batched decoding: [2, B, length, kv_dim] keys then values
  cuda::DeviceRope rope;
  int64_t rope_len = -1;
  // Backward scratch (kept between steps so that a step allocates nothing once sizes settle).
  DeviceBuffer<T> dx, dh, dh_top, datt, dq, dk, dv, dq_pre, dk_pre;
  DeviceBuffer<T> moe_out, dy_rows, dxe, drouter_logits, dys, dgl;
  DeviceBuffer<float> dweight_rows, drouter_f32;
  FfnScratch<T> scratch;
};

struct LoraDims {  // the routed experts' LoRA (rank 0: none)
  float scale = 1;
  int64_t rank = 0;
  // The expert weights given already hold scale·B·A (the fused path's merged experts): the forward adds no LoRA
  // branch and dx takes no dt·A product; the factors' own gradients are computed as without.
  bool merged = false;
};

// Where a tensor that starts at offset o of the ParamLayout buffer starts in another buffer (null: at o).
using OffsetRemap = std::function<int64_t(int64_t)>;
// The same tensors as v (bound on `from`, may hold nulls) on the buffer `to`: of the same layout, or of the layout
// `remap` describes.
template <class T>
ModelView<T> rebase(const ModelView<float>& v, const float* from, T* to, const OffsetRemap& remap = nullptr);

// out[n, H] = down(silu(gate·x) ⊙ up·x) with each projection's LoRA branch when the view has one; saves g, u, a.
template <class T>
void ffn_fwd(Context& ctx, const FfnView<T>& w, const T* x, int64_t n, int64_t H, int64_t I, T* g, T* u, T* a,
             T* out, const LoraDims& lo, FfnScratch<T>& s);
// Backward of ffn_fwd as the CPU's ffn_backward: accumulates into gw (null entries skipped) and dx (may be null).
template <class T>
void ffn_bwd(Context& ctx, const FfnView<T>& w, const FfnView<T>& gw, const T* x, int64_t n, int64_t H, int64_t I,
             const T* g, const T* u, const T* a, const T* dout, T* dx, const LoraDims& lo, FfnScratch<T>& s);
// The same for the routed experts of a layer in one go, each op one grouped product over the experts: expert e (weights
// w[e], gradients gw[e]) owns rows [off[e], off[e+1]) of x, g, u, a, out, dout and dx (off[0] = 0); experts_bwd
// leaves out the experts that need nothing (no dx, no gradient).
template <class T>
void experts_fwd(Context& ctx, const std::vector<FfnView<T>>& w, const std::vector<int64_t>& off, const T* x,
                 int64_t H, int64_t I, T* g, T* u, T* a, T* out, const LoraDims& lo, FfnScratch<T>& s);
template <class T>
void experts_bwd(Context& ctx, const std::vector<FfnView<T>>& w, const std::vector<FfnView<T>>& gw,
                 const std::vector<int64_t>& off, const T* x, int64_t H, int64_t I, const T* g, const T* u,
                 const T* a, const T* dout, T* dx, const LoraDims& lo, FfnScratch<T>& s);
template <class T>
bool any_grad(const FfnView<T>& g) {
  return g.gate || g.up || g.down || g.gate_A || g.gate_B || g.up_A || g.up_B || g.down_A || g.down_B;
}

}  // namespace wattmoe::gpu
