// The MoE transformer: forward over a batch of token sequences, saving what backward needs, and backward into a
// gradient buffer with the same ParamLayout as the weights. Templated on T (float for use, double for gradient
// checks). One code path serves training (B sequences from position 0) and decoding with a KV cache (B = 1,
// positions continue from the cache).
//
// Per layer (names as telemetry and debug dumps show them, e.g. layer3.moe.router_probs):
//   x ─ RMSNorm ─ q,k,v proj (+bias) ─ [q/k norm] ─ [clip] ─ RoPE ─ causal GQA ─ o proj ─ +x
//     ─ RMSNorm ─ router logits ─ softmax ─ select (policy) ─ weights (renormalised by the arch's rule)
//       ─ experts (SwiGLU) × weight ─ [+ sigmoid(gate)·shared expert] ─ +x          (or a dense SwiGLU MLP)
// With ModelConfig::lora_rank > 0 every routed expert's gate/up/down projection adds its LoRA branch (model/lora.h).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/grad_mask.h"
#include "model/kv_cache.h"
#include "model/params.h"
#include "moe/aux_losses.h"
#include "moe/dispatch.h"
#include "moe/router_view.h"
#include "moe/routing.h"

namespace wattmoe {

// Chooses experts for n tokens of one layer from its router logits and probabilities [n, E].
// The default is the model's own top-k (ties to the lower index).
template <class T>
using RouterSelect = std::function<void(int layer, const T* logits, const T* probs, int64_t n, Routing& out)>;

template <class T>
struct FfnActs {  // SwiGLU intermediates for backward: gate/up pre-activations, activation, output
  std::vector<T> g, u, a, y;
};

template <class T>
struct LayerActs {
  std::vector<T> x_in, h_attn, rstd_attn;           // residual in, normed input to attention
  std::vector<T> q_pre, k_pre, rstd_q, rstd_k;      // projections before q/k norm
  std::vector<T> q_clip, k_clip, v_clip;            // before clamping (clip_qkv)
  std::vector<T> q, k, v;                           // after rope (q, k) — what attention consumed
  std::vector<T> probs, att;                        // attention probabilities [B, nh, S, Tk], output [N, qd]
  std::vector<T> x_mid, h_ffn, rstd_ffn;            // residual after attention, normed input to the FFN
  std::vector<T> router_logits, router_probs;       // [N, E]
  std::vector<T> route_weight;                      // [N, k] (0 for unused slots)
  std::vector<T> drouter;                           // [N, E] extra ∂L/∂router_logits from auxiliary losses
  Routing routing;
  Dispatch dispatch;
  FfnActs<T> experts;                               // rows in dispatch order
  FfnActs<T> shared;                                // or the dense MLP
  std::vector<T> shared_gate_logit;                 // [N]
};

template <class T>
struct Activations {
  int B = 0, S = 0;
  int64_t pos0 = 0;                                 // position of the first token (KV cache length before)
  std::vector<LayerActs<T>> layers;
  std::vector<T> x_final, h_final, rstd_final;      // final norm input/output
  std::vector<T> logits;                            // [B·S, V]
  int64_t tokens() const { return int64_t(B) * S; }
};

// Views of each layer's router logits, probabilities and drouter in acts (moe/router_view.h), for the host-side MoE
// maths (moe/aux_losses.h, adapt/router_objectives.h).
template <class T>
RouterViews<T> router_views(Activations<T>& acts, const ModelConfig& c);

template <class T>
class Transformer {
 public:
  explicit Transformer(ModelConfig c);
  const ModelConfig& config() const { return cfg_; }
  const ParamLayout& layout() const { return layout_; }

  // ids [B, S] (checked against the vocabulary). With a cache, B must be 1 and the tokens follow the cached ones.
  void forward(const T* params, const int32_t* ids, int B, int S, Activations<T>& acts, KvCache<T>* cache = nullptr,
               const RouterSelect<T>& select = nullptr) const;

  // moe/aux_losses.h over this forward's router outputs: the values; non-zero coefficients add coef × gradient into
  // each layer's acts.drouter, which backward carries.
  AuxLossValues router_aux_losses(Activations<T>& acts, double lb_coef, double z_coef) const {
    return wattmoe::router_aux_losses<T>(router_views(acts, cfg_), lb_coef, z_coef);
  }

  // Accumulates ∂L/∂params into grads given dlogits [B·S, V] (and each layer's drouter). With a mask
  // (model/grad_mask.h; null = every tensor) only the needed tensors' gradients are computed, the others' regions of
  // `grads` are left untouched, and the pass stops below the lowest layer holding a needed tensor.
  void backward(const T* params, const int32_t* ids, const T* dlogits, Activations<T>& acts, T* grads,
                const GradMask* mask = nullptr) const;

 private:
  void layer_forward(const LayerView<T>& w, int l, LayerActs<T>& a, const Activations<T>& acts, KvCache<T>* cache,
                     const RouterSelect<T>& select, std::vector<T>& x) const;
  // need_dx_in: whether dx must carry ∂L/∂(layer input) on return (false for the lowest layer of a masked pass).
  void layer_backward(const LayerView<T>& w, LayerView<T>& g, int l, LayerActs<T>& a, const Activations<T>& acts,
                      std::vector<T>& dx, bool need_dx_in) const;
  void moe_forward(const LayerView<T>& w, int l, LayerActs<T>& a, int64_t N, const RouterSelect<T>& select,
                   std::vector<T>& out) const;
  void moe_backward(const LayerView<T>& w, LayerView<T>& g, LayerActs<T>& a, int64_t N, const T* dout,
                    std::vector<T>& dh, bool need_dh) const;

  ModelConfig cfg_;
  ParamLayout layout_;
};

}  // namespace wattmoe
