#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/scratch.h"
#include "core/thread_pool.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/lora.h"
#include "ops/norm.h"
#include "ops/rows.h"
#include "ops/rope.h"
#include "ops/softmax.h"

namespace wattmoe {

namespace {

// Sizes a buffer that the caller then overwrites completely: no zero fill (re-zeroing every activation buffer of a
// step cost ~10% of a forward). Buffers that are accumulated into use resize_zero.
template <class T>
void resize(std::vector<T>& v, int64_t n) {
  v.resize(size_t(n));
}

template <class T>
void resize_zero(std::vector<T>& v, int64_t n) {
  v.assign(size_t(n), T(0));
}

template <class T>
void add_into(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

// LoRA of the routed experts (null factors when absent): scale and rank.
struct LoraDims {
  double scale = 1;
  int64_t rank = 0;
};

// Row-parallel add_into for [N, H] buffers.
template <class T>
void add_into_rows(T* dst, const T* src, int64_t rows, int64_t H) {
  default_pool().parallel_for(
      rows, [&](int64_t b, int64_t e) { add_into(dst + b * H, src + b * H, (e - b) * H); },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)));
}

// dst = src for [rows, H] buffers, rows in parallel (a residual-stream copy is 1 MB per layer).
template <class T>
void copy_rows(std::vector<T>& dst, const std::vector<T>& src, int64_t rows, int64_t H) {
  dst.resize(src.size());
  default_pool().parallel_for(
      rows, [&](int64_t b, int64_t e) { std::memcpy(&dst[b * H], &src[b * H], sizeof(T) * (e - b) * H); },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)));
}

// Zeroes p[rows, H], rows in parallel.
template <class T>
void zero_rows(T* p, int64_t rows, int64_t H) {
  default_pool().parallel_for(
      rows, [&](int64_t b, int64_t e) { std::memset(static_cast<void*>(p + b * H), 0, sizeof(T) * (e - b) * H); },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1)));
}

// Experts in decreasing row count (ties: lower index first), so that the largest start first when run as tasks.
std::vector<int> experts_by_size(const Dispatch& d) {
  std::vector<int> order(d.offsets.size() - 1);
  for (size_t e = 0; e < order.size(); ++e) order[e] = int(e);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return d.offsets[a + 1] - d.offsets[a] > d.offsets[b + 1] - d.offsets[b];
  });
  return order;
}

// SwiGLU FFN over rows x[n, H]: out[n, H] = down(silu(gate·x) ⊙ up·x), each projection with its LoRA branch when
// the view has one. Saves g, u, a [n, I] where pointed.
template <class T>
void ffn_forward(const FfnView<T>& w, const T* x, int64_t n, int64_t H, int64_t I, T* g, T* u, T* a, T* out,
                 const LoraDims& lo = {}) {
  const T ls = T(lo.scale);
  ops::linear_fwd<T>(x, w.gate, nullptr, g, n, H, I);
  if (w.has_lora()) ops::lora_fwd<T>(x, w.gate_A, w.gate_B, ls, g, n, H, I, lo.rank);
  ops::linear_fwd<T>(x, w.up, nullptr, u, n, H, I);
  if (w.has_lora()) ops::lora_fwd<T>(x, w.up_A, w.up_B, ls, u, n, H, I, lo.rank);
  ops::swiglu_fwd<T>(g, u, a, n * I);
  ops::linear_fwd<T>(a, w.down, nullptr, out, n, I, H);
  if (w.has_lora()) ops::lora_fwd<T>(a, w.down_A, w.down_B, ls, out, n, I, H, lo.rank);
}

// The same, saving g, u, a in `s` (y not used here).
template <class T>
void ffn_forward(const FfnView<T>& w, const T* x, int64_t n, int64_t H, int64_t I, FfnActs<T>& s, T* out,
                 const LoraDims& lo = {}) {
  resize(s.g, n * I), resize(s.u, n * I), resize(s.a, n * I);
  ffn_forward<T>(w, x, n, H, I, s.g.data(), s.u.data(), s.a.data(), out, lo);
}

// Backward of ffn_forward: accumulates weight grads into gw and dx (input grad) from dout. Null pointers in gw (and a
// null dx) are skipped; when nothing below the down projection is wanted, the gate/up half is skipped.
template <class T>
void ffn_backward(const FfnView<T>& w, const FfnView<T>& gw, const T* x, int64_t n, int64_t H, int64_t I, const T* g,
                  const T* u, const T* a, const T* dout, T* dx, const LoraDims& lo = {}) {
  const bool lora = w.has_lora();
  const T ls = T(lo.scale);
  const bool lower = dx || gw.gate || gw.up || gw.gate_A || gw.gate_B || gw.up_A || gw.up_B;
  Scratch<T> da(size_t(lower ? n * I : 0)), dg(da.size()), du(da.size());
  da.zero(), dg.zero(), du.zero();
  ops::linear_bwd<T>(a, w.down, dout, lower ? da.data() : nullptr, gw.down, nullptr, n, I, H);
  if (lora)
    ops::lora_bwd<T>(a, w.down_A, w.down_B, ls, dout, lower ? da.data() : nullptr, gw.down_A, gw.down_B, n, I, H,
                     lo.rank);
  if (!lower) return;
  ops::swiglu_bwd<T>(g, u, da.data(), dg.data(), du.data(), n * I);
  ops::linear_bwd<T>(x, w.gate, dg.data(), dx, gw.gate, nullptr, n, H, I);
  if (lora) ops::lora_bwd<T>(x, w.gate_A, w.gate_B, ls, dg.data(), dx, gw.gate_A, gw.gate_B, n, H, I, lo.rank);
  ops::linear_bwd<T>(x, w.up, du.data(), dx, gw.up, nullptr, n, H, I);
  if (lora) ops::lora_bwd<T>(x, w.up_A, w.up_B, ls, du.data(), dx, gw.up_A, gw.up_B, n, H, I, lo.rank);
}

template <class T>
bool any_grad(const FfnView<T>& g) {
  return g.gate || g.up || g.down || g.gate_A || g.gate_B || g.up_A || g.up_B || g.down_A || g.down_B;
}

template <class T>
void ffn_backward(const FfnView<T>& w, const FfnView<T>& gw, const T* x, int64_t n, int64_t H, int64_t I,
                  const FfnActs<T>& s, const T* dout, T* dx, const LoraDims& lo = {}) {
  ffn_backward<T>(w, gw, x, n, H, I, s.g.data(), s.u.data(), s.a.data(), dout, dx, lo);
}

}  // namespace

template <class T>
Transformer<T>::Transformer(ModelConfig c) : cfg_(std::move(c)), layout_(ParamLayout::build(cfg_)) {}

template <class T>
void Transformer<T>::forward(const T* params, const int32_t* ids, int B, int S, Activations<T>& acts,
                             KvCache<T>* cache, const RouterSelect<T>& select) const {
  const ModelConfig& c = cfg_;
  const int64_t N = int64_t(B) * S, H = c.hidden_size;
  WATTMOE_CHECK(B >= 1 && S >= 1);
  WATTMOE_CHECK(!cache || B == 1, "a KV cache serves one sequence");
  for (int64_t i = 0; i < N; ++i)
    WATTMOE_REQUIRE(ids[i] >= 0 && ids[i] < c.vocab_size, "input id {} at position {} is outside the vocabulary [0, {})",
                    ids[i], i, c.vocab_size);
  acts.B = B, acts.S = S;
  acts.pos0 = cache ? cache->length : 0;
  WATTMOE_REQUIRE(!cache || acts.pos0 + S <= cache->capacity, "sequence of {} tokens exceeds the KV cache ({} of {} used)",
                  S, acts.pos0, cache->capacity);
  acts.layers.resize(size_t(c.num_layers));
  const ModelView<T> w = ModelView<T>::bind(c, layout_, const_cast<T*>(params));

  std::vector<T>& x = acts.x_final;  // the residual stream; after the last layer, the final norm's input
  resize(x, N * H);
  default_pool().parallel_for(
      N,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) std::memcpy(&x[i * H], w.embed + int64_t(ids[i]) * H, sizeof(T) * H);
      },
      64);
  for (int l = 0; l < c.num_layers; ++l) layer_forward(w.layers[l], l, acts.layers[l], acts, cache, select, x);
  if (cache) cache->length += S;

  resize(acts.h_final, N * H), resize(acts.rstd_final, N);
  ops::rmsnorm_fwd<T>(x.data(), w.final_norm, acts.h_final.data(), acts.rstd_final.data(), N, H, c.rms_norm_eps);
  resize(acts.logits, N * c.vocab_size);
  ops::linear_fwd<T>(acts.h_final.data(), w.lm_head, nullptr, acts.logits.data(), N, H, c.vocab_size);
}

template <class T>
void Transformer<T>::layer_forward(const LayerView<T>& w, int l, LayerActs<T>& a, const Activations<T>& acts,
                                   KvCache<T>* cache, const RouterSelect<T>& select, std::vector<T>& x) const {
  const ModelConfig& c = cfg_;
  const int64_t N = acts.tokens(), H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), S = acts.S;
  copy_rows(a.x_in, x, N, H);
  resize(a.h_attn, N * H), resize(a.rstd_attn, N);
  ops::rmsnorm_fwd<T>(x.data(), w.ln_attn, a.h_attn.data(), a.rstd_attn.data(), N, H, c.rms_norm_eps);

  resize(a.q, N * qd), resize(a.k, N * kvd), resize(a.v, N * kvd);
  ops::linear_fwd<T>(a.h_attn.data(), w.wq, w.bq, a.q.data(), N, H, qd);
  ops::linear_fwd<T>(a.h_attn.data(), w.wk, w.bk, a.k.data(), N, H, kvd);
  ops::linear_fwd<T>(a.h_attn.data(), w.wv, w.bv, a.v.data(), N, H, kvd);
  if (c.qk_norm) {  // OLMoE: RMSNorm over the whole projection, before the head split
    a.q_pre = a.q, a.k_pre = a.k;
    resize(a.rstd_q, N), resize(a.rstd_k, N);
    ops::rmsnorm_fwd<T>(a.q_pre.data(), w.q_norm, a.q.data(), a.rstd_q.data(), N, qd, c.rms_norm_eps);
    ops::rmsnorm_fwd<T>(a.k_pre.data(), w.k_norm, a.k.data(), a.rstd_k.data(), N, kvd, c.rms_norm_eps);
  }
  if (c.clip_qkv > 0) {  // OLMoE: clamp after the norms, keeping the values before it for backward
    const T lim = T(c.clip_qkv);
    for (auto [v, pre] : {std::pair{&a.q, &a.q_clip}, {&a.k, &a.k_clip}, {&a.v, &a.v_clip}}) {
      resize(*pre, int64_t(v->size()));
      ops::clamp_fwd<T>(v->data(), pre->data(), lim, int64_t(v->size()));
    }
  }
  const ops::RopeTable rope = ops::rope_table(acts.pos0, S, c.head_dim, c.rope_theta);

  // RoPE and attention, one sequence per task (sequences are independent); with a cache (B = 1) the keys/values
  // are the cached ones plus these.
  const int64_t Tk = acts.pos0 + S;
  resize(a.att, N * qd);
  resize(a.probs, int64_t(acts.B) * c.num_heads * S * Tk);
  default_pool().run_tasks(acts.B, [&](int64_t b) {
    ops::rope_apply<T>(a.q.data() + b * S * qd, S, c.num_heads, c.head_dim, qd, rope, acts.pos0, false);
    ops::rope_apply<T>(a.k.data() + b * S * kvd, S, c.num_kv_heads, c.head_dim, kvd, rope, acts.pos0, false);
    const T *k = a.k.data() + b * S * kvd, *v = a.v.data() + b * S * kvd;
    if (cache) {
      std::copy(a.k.begin(), a.k.end(), cache->k[l].begin() + acts.pos0 * kvd);
      std::copy(a.v.begin(), a.v.end(), cache->v[l].begin() + acts.pos0 * kvd);
      k = cache->k[l].data(), v = cache->v[l].data();
    }
    ops::AttnShape sh{S, Tk, acts.pos0, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    ops::attention_fwd<T>(a.q.data() + b * S * qd, k, v, a.att.data() + b * S * qd,
                          a.probs.data() + b * c.num_heads * S * Tk, sh);
  });
  Scratch<T> o(size_t(N * H));
  ops::linear_fwd<T>(a.att.data(), w.wo, nullptr, o.data(), N, qd, H);
  add_into_rows(x.data(), o.data(), N, H);

  copy_rows(a.x_mid, x, N, H);
  resize(a.h_ffn, N * H), resize(a.rstd_ffn, N);
  ops::rmsnorm_fwd<T>(x.data(), w.ln_ffn, a.h_ffn.data(), a.rstd_ffn.data(), N, H, c.rms_norm_eps);
  if (w.moe) {
    moe_forward(w, l, a, N, select, x);  // adds the MoE output into x
  } else {
    Scratch<T> out(size_t(N * H));
    ffn_forward<T>(w.dense, a.h_ffn.data(), N, H, c.intermediate_size, a.shared, out.data());
    add_into_rows(x.data(), out.data(), N, H);
  }
}

// Adds the layer's MoE output (routed experts × weights, + the gated shared expert) into out [N, H].
template <class T>
void Transformer<T>::moe_forward(const LayerView<T>& w, int l, LayerActs<T>& a, int64_t N,
                                 const RouterSelect<T>& select, std::vector<T>& out) const {
  const ModelConfig& c = cfg_;
  const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  const LoraDims lora{c.lora_scale, c.lora_rank};
  resize(a.router_logits, N * E), resize(a.router_probs, N * E), resize_zero(a.drouter, N * E);
  ops::linear_fwd<T>(a.h_ffn.data(), w.router, nullptr, a.router_logits.data(), N, H, E);
  ops::softmax_fwd<T>(a.router_logits.data(), a.router_probs.data(), N, E);
  if (select) {
    select(l, a.router_logits.data(), a.router_probs.data(), N, a.routing);
    WATTMOE_CHECK(a.routing.tokens == N && a.routing.experts == E && int64_t(a.routing.expert.size()) == N * a.routing.k);
  } else {
    select_topk<T>(a.router_probs.data(), N, int(E), c.top_k, a.routing);
  }
  const int k = a.routing.k;
  resize(a.route_weight, N * k);
  route_weights<T>(a.routing, a.router_probs.data(), c.norm_topk_prob, a.route_weight.data());

  a.dispatch = build_dispatch(a.routing);
  const int64_t R = a.dispatch.rows();
  resize(a.experts.g, R * I), resize(a.experts.u, R * I), resize(a.experts.a, R * I), resize(a.experts.y, R * H);
  // One task per expert (its rows stay one GEMM, as on one thread): gather its rows, then its FFN.
  Scratch<T> xe(size_t(R * H));
  const std::vector<int> order = experts_by_size(a.dispatch);
  default_pool().run_tasks(E, [&](int64_t i) {
    const int e = order[size_t(i)];
    const int64_t r0 = a.dispatch.offsets[e], n = a.dispatch.offsets[e + 1] - r0;
    if (n == 0) return;
    ops::gather_rows<T>(a.h_ffn.data(), &a.dispatch.token[r0], nullptr, &xe[r0 * H], n, H);
    ffn_forward<T>(w.experts[e], &xe[r0 * H], n, H, I, &a.experts.g[r0 * I], &a.experts.u[r0 * I],
                   &a.experts.a[r0 * I], &a.experts.y[r0 * H], lora);
  });

  if (w.shared.gate) {  // Qwen2-MoE: + sigmoid(g·x) · shared_expert(x)
    const int64_t SI = c.shared_expert_intermediate_size;
    resize(a.shared.y, N * H), resize(a.shared_gate_logit, N);
    ffn_forward<T>(w.shared, a.h_ffn.data(), N, H, SI, a.shared, a.shared.y.data());
    ops::linear_fwd<T>(a.h_ffn.data(), w.shared_gate, nullptr, a.shared_gate_logit.data(), N, H, 1);
  }
  // Combine per token, as the GPU's host path does: Σ over slots in slot order into a zeroed block (independent of
  // how rows were grouped), + the gated shared expert, then one add into out.
  const std::vector<int64_t> row_of = slot_rows(a.dispatch, N, k);
  Scratch<T> moe_out(size_t(N * H));
  default_pool().parallel_for(
      N,
      [&](int64_t t0, int64_t t1) {
        T* block = moe_out.data() + t0 * H;
        std::fill(block, block + (t1 - t0) * H, T(0));
        ops::sum_rows<T>(a.experts.y.data(), row_of.data() + t0 * k, a.route_weight.data() + t0 * k, block, t1 - t0,
                         k, H);  // pointer arithmetic, not indexing: k may be 0 (no routed expert)
        if (w.shared.gate) ops::gated_add_fwd<T>(&a.shared_gate_logit[t0], &a.shared.y[t0 * H], block, t1 - t0, H);
        add_into(out.data() + t0 * H, block, (t1 - t0) * H);
      },
      64);
}

template <class T>
RouterViews<T> router_views(Activations<T>& acts, const ModelConfig& c) {
  RouterViews<T> v;
  v.tokens = acts.tokens(), v.experts = c.num_experts, v.top_k = c.top_k;
  v.layers.resize(acts.layers.size());
  for (size_t l = 0; l < acts.layers.size(); ++l) {
    LayerActs<T>& a = acts.layers[l];
    if (a.router_probs.empty()) continue;
    v.layers[l] = {a.router_logits.data(), a.router_probs.data(), a.drouter.data()};
  }
  return v;
}

template <class T>
void Transformer<T>::backward(const T* params, const int32_t* ids, const T* dlogits, Activations<T>& acts,
                              T* grads, const GradMask* mask) const {
  const ModelConfig& c = cfg_;
  const int64_t N = acts.tokens(), H = c.hidden_size;
  WATTMOE_CHECK(acts.pos0 == 0, "backward through a KV-cached forward is not supported");
  WATTMOE_CHECK(!mask || mask->needs.size() == layout_.specs().size(), "gradient mask has {} entries for {} tensors",
                mask ? mask->needs.size() : 0, layout_.specs().size());
  if (mask && !mask->any()) return;
  const ModelView<T> w = ModelView<T>::bind(c, layout_, const_cast<T*>(params));
  // Gradients of tensors the mask does not need bind to null: every op below skips a null gradient.
  ModelView<T> g = ModelView<T>::bind(c, layout_, grads, mask);
  // The pass goes down to layer `lowest` (−1: through every layer into the embedding).
  const int lowest = mask ? mask->lowest_layer(layout_) : -1;
  const bool into_layers = lowest < c.num_layers;

  std::vector<T> dx(size_t(N * H), T(0));
  Scratch<T> dh(size_t(N * H));
  dh.zero();
  const bool need_dh = into_layers || g.final_norm;
  ops::linear_bwd<T>(acts.h_final.data(), w.lm_head, dlogits, need_dh ? dh.data() : nullptr, g.lm_head, nullptr, N, H,
                     c.vocab_size);
  if (!need_dh) return;
  ops::rmsnorm_bwd<T>(acts.x_final.data(), w.final_norm, acts.rstd_final.data(), dh.data(),
                      into_layers ? dx.data() : nullptr, g.final_norm, N, H);
  for (int l = c.num_layers - 1; l >= std::max(lowest, 0); --l)
    layer_backward(w.layers[l], g.layers[l], l, acts.layers[l], acts, dx, l > lowest);
  // Embedding rows gather from every token that used them: split by columns, tokens in order within each.
  if (g.embed && lowest < 0)
    default_pool().parallel_for(
        H,
        [&](int64_t j0, int64_t j1) {
          for (int64_t i = 0; i < N; ++i) add_into(g.embed + int64_t(ids[i]) * H + j0, &dx[i * H + j0], j1 - j0);
        },
        std::max<int64_t>(8, 16384 / std::max<int64_t>(N, 1)));
}

template <class T>
void Transformer<T>::layer_backward(const LayerView<T>& w, LayerView<T>& g, int l, LayerActs<T>& a,
                                    const Activations<T>& acts, std::vector<T>& dx, bool need_dx_in) const {
  const ModelConfig& c = cfg_;
  const int64_t N = acts.tokens(), H = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), S = acts.S;
  // What this layer must produce (all true in a full backward): the input gradient, the q/k/v branch (its weights,
  // q/k norms, ln_attn, or anything below), the attention half, and the FFN half's input gradient.
  const bool need_qkv = need_dx_in || g.ln_attn || g.wq || g.wk || g.wv || g.bq || g.bk || g.bv || g.q_norm || g.k_norm;
  const bool need_attn = need_qkv || g.wo;
  const bool need_dh_ffn = need_attn || g.ln_ffn;

  // FFN half: dx holds ∂L/∂x_out; x_out = x_mid + ffn(norm(x_mid)).
  std::vector<T> dh(size_t(N * H), T(0));
  if (w.moe) {
    moe_backward(w, g, a, N, dx.data(), dh, need_dh_ffn);
  } else if (need_dh_ffn || any_grad(g.dense)) {
    ffn_backward<T>(w.dense, g.dense, a.h_ffn.data(), N, H, c.intermediate_size, a.shared, dx.data(),
                    need_dh_ffn ? dh.data() : nullptr);
  }
  if (!need_dh_ffn) return;
  ops::rmsnorm_bwd<T>(a.x_mid.data(), w.ln_ffn, a.rstd_ffn.data(), dh.data(), need_attn ? dx.data() : nullptr,
                      g.ln_ffn, N, H);
  if (!need_attn) return;

  // Attention half: x_mid = x_in + o_proj(attn(...)).
  Scratch<T> datt(size_t(need_qkv ? N * qd : 0));
  if (need_qkv) zero_rows(datt.data(), N, qd);
  ops::linear_bwd<T>(a.att.data(), w.wo, dx.data(), need_qkv ? datt.data() : nullptr, g.wo, nullptr, N, qd, H);
  if (!need_qkv) return;
  Scratch<T> dq(size_t(N * qd)), dk(size_t(N * kvd)), dv(size_t(N * kvd));
  // Attention backward and inverse RoPE, one sequence per task (each writes only its own rows of dq, dk, dv).
  const ops::RopeTable rope = ops::rope_table(0, S, c.head_dim, c.rope_theta);
  default_pool().run_tasks(acts.B, [&](int64_t b) {
    std::fill(dq.data() + b * S * qd, dq.data() + (b + 1) * S * qd, T(0));
    std::fill(dk.data() + b * S * kvd, dk.data() + (b + 1) * S * kvd, T(0));
    std::fill(dv.data() + b * S * kvd, dv.data() + (b + 1) * S * kvd, T(0));
    ops::AttnShape sh{S, S, 0, c.num_heads, c.num_kv_heads, c.head_dim, qd, kvd};
    ops::attention_bwd<T>(a.q.data() + b * S * qd, a.k.data() + b * S * kvd, a.v.data() + b * S * kvd,
                          a.probs.data() + b * c.num_heads * S * S, datt.data() + b * S * qd, dq.data() + b * S * qd,
                          dk.data() + b * S * kvd, dv.data() + b * S * kvd, sh);
    ops::rope_apply<T>(dq.data() + b * S * qd, S, c.num_heads, c.head_dim, qd, rope, 0, true);
    ops::rope_apply<T>(dk.data() + b * S * kvd, S, c.num_kv_heads, c.head_dim, kvd, rope, 0, true);
  });
  if (c.clip_qkv > 0) {  // clamp passes the gradient only inside [-clip, clip] (as torch.clamp does)
    const T lim = T(c.clip_qkv);
    ops::clamp_bwd<T>(a.q_clip.data(), lim, dq.data(), int64_t(dq.size()));
    ops::clamp_bwd<T>(a.k_clip.data(), lim, dk.data(), int64_t(dk.size()));
    ops::clamp_bwd<T>(a.v_clip.data(), lim, dv.data(), int64_t(dv.size()));
  }
  if (c.qk_norm) {
    Scratch<T> dq_pre(size_t(N * qd)), dk_pre(size_t(N * kvd));
    dq_pre.zero(), dk_pre.zero();
    ops::rmsnorm_bwd<T>(a.q_pre.data(), w.q_norm, a.rstd_q.data(), dq.data(), dq_pre.data(), g.q_norm, N, qd);
    ops::rmsnorm_bwd<T>(a.k_pre.data(), w.k_norm, a.rstd_k.data(), dk.data(), dk_pre.data(), g.k_norm, N, kvd);
    std::copy(dq_pre.begin(), dq_pre.end(), dq.begin()), std::copy(dk_pre.begin(), dk_pre.end(), dk.begin());
  }
  std::fill(dh.begin(), dh.end(), T(0));
  T* dha = need_dx_in || g.ln_attn ? dh.data() : nullptr;  // ∂L/∂h_attn
  ops::linear_bwd<T>(a.h_attn.data(), w.wq, dq.data(), dha, g.wq, g.bq, N, H, qd);
  ops::linear_bwd<T>(a.h_attn.data(), w.wk, dk.data(), dha, g.wk, g.bk, N, H, kvd);
  ops::linear_bwd<T>(a.h_attn.data(), w.wv, dv.data(), dha, g.wv, g.bv, N, H, kvd);
  if (dha)
    ops::rmsnorm_bwd<T>(a.x_in.data(), w.ln_attn, a.rstd_attn.data(), dh.data(), need_dx_in ? dx.data() : nullptr,
                        g.ln_attn, N, H);
}

template <class T>
void Transformer<T>::moe_backward(const LayerView<T>& w, LayerView<T>& g, LayerActs<T>& a, int64_t N, const T* dout,
                                  std::vector<T>& dh, bool need_dh) const {
  const ModelConfig& c = cfg_;
  const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  const LoraDims lora{c.lora_scale, c.lora_rank};
  const int k = a.routing.k;
  const int64_t R = a.dispatch.rows();

  // Routed experts: row r carries token t's slot s; y_r enters the output scaled by its weight.
  // One task per expert: its rows' dy = weight · dout and ∂L/∂weight, then its FFN backward (its own weight
  // gradients, its rows of dxe).
  // ∂L/∂weight feeds only the router's gradient and the input gradient; dxe only the input gradient.
  const bool need_dweight = need_dh || g.router;
  std::vector<T> dweight(size_t(N * k), T(0));
  Scratch<T> dxe(size_t(need_dh ? R * H : 0));
  const std::vector<int> order = experts_by_size(a.dispatch);
  default_pool().run_tasks(E, [&](int64_t i) {
    const int e = order[size_t(i)];
    const int64_t r0 = a.dispatch.offsets[e], n = a.dispatch.offsets[e + 1] - r0;
    if (n == 0) return;
    const int32_t* tok = &a.dispatch.token[r0];
    // ∂L/∂weight = dout[t]·y_r (wanted for the router's gradient or the input gradient): each a sum in j order.
    if (need_dweight) {
      Scratch<T> dots(static_cast<size_t>(n));
      ops::row_dots<T>(dout, tok, &a.experts.y[r0 * H], dots.data(), n, H);
      for (int64_t q = 0; q < n; ++q) dweight[tok[q] * k + a.dispatch.slot[r0 + q]] = dots[q];
    }
    // The expert's FFN backward, unless neither its input gradient nor any of its weight gradients is wanted:
    // dy = weight · dout and the rows' inputs, gathered.
    if (!(need_dh || any_grad(g.experts[e]))) return;
    Scratch<T> dy(size_t(n * H)), xe(size_t(n * H)), row_w(static_cast<size_t>(n));
    for (int64_t q = 0; q < n; ++q) row_w[q] = a.route_weight[tok[q] * k + a.dispatch.slot[r0 + q]];
    ops::gather_rows<T>(dout, tok, row_w.data(), dy.data(), n, H);
    ops::gather_rows<T>(a.h_ffn.data(), tok, nullptr, xe.data(), n, H);
    if (need_dh) std::fill(dxe.data() + r0 * H, dxe.data() + (r0 + n) * H, T(0));
    ffn_backward<T>(w.experts[e], g.experts[e], xe.data(), n, H, I, &a.experts.g[r0 * I], &a.experts.u[r0 * I],
                    &a.experts.a[r0 * I], dy.data(), need_dh ? &dxe[r0 * H] : nullptr, lora);
  });
  // dh[t] (zero here) += its rows of dxe in row order (the order one pass over the rows would add them).
  if (need_dh) {
    const std::vector<int64_t> rows = slot_rows_in_row_order(a.dispatch, N, k);
    default_pool().parallel_for(
        N,
        [&](int64_t t0, int64_t t1) {
          ops::sum_rows<T>(dxe.data(), rows.data() + t0 * k, nullptr, &dh[t0 * H], t1 - t0, k, H);
        },
        64);
  }

  // Weights → router probabilities (w_s = p_s, or p_s / Σ p when renormalised) → logits.
  if (need_dh || g.router) {
    std::vector<T> dprobs(size_t(N * E), T(0));
    route_weights_bwd<T>(a.routing, a.router_probs.data(), a.route_weight.data(), dweight.data(), c.norm_topk_prob,
                         dprobs.data());
    std::vector<T> dlogits = a.drouter;  // auxiliary losses' contribution
    ops::softmax_bwd<T>(a.router_probs.data(), dprobs.data(), dlogits.data(), N, E);
    ops::linear_bwd<T>(a.h_ffn.data(), w.router, dlogits.data(), need_dh ? dh.data() : nullptr, g.router, nullptr, N,
                       H, E);
  }

  if (w.shared.gate && (need_dh || any_grad(g.shared) || g.shared_gate)) {
    const int64_t SI = c.shared_expert_intermediate_size;
    Scratch<T> dys(size_t(N * H));
    dys.zero();
    std::vector<T> dgl(static_cast<size_t>(N), T(0));
    ops::gated_add_bwd<T>(a.shared_gate_logit.data(), a.shared.y.data(), dout, dys.data(), dgl.data(), N, H);
    if (need_dh || any_grad(g.shared))
      ffn_backward<T>(w.shared, g.shared, a.h_ffn.data(), N, H, SI, a.shared, dys.data(),
                      need_dh ? dh.data() : nullptr);
    ops::linear_bwd<T>(a.h_ffn.data(), w.shared_gate, dgl.data(), need_dh ? dh.data() : nullptr, g.shared_gate,
                       nullptr, N, H, 1);
  }
}

template class Transformer<float>;
template class Transformer<double>;
template RouterViews<float> router_views<float>(Activations<float>&, const ModelConfig&);
template RouterViews<double> router_views<double>(Activations<double>&, const ModelConfig&);

}  // namespace wattmoe
