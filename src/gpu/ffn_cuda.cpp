// SwiGLU FFN (+ LoRA branch) on the GPU, op for op as ffn_forward/ffn_backward and lora_fwd/lora_bwd of the CPU model;
// and rebase (weight views on device buffers).
#include "gpu/device_acts.h"

namespace wattmoe::gpu {

namespace {

// y[n, out] += s · (x·Aᵀ)·Bᵀ  (model/lora_linear.h)
template <class T>
void lora_fwd(Context& ctx, const T* x, const T* A, const T* B, float s, T* y, int64_t n, int64_t in, int64_t out,
              int64_t r, FfnScratch<T>& sc) {
  if (n == 0) return;
  sc.t.resize(size_t(n * r));
  cuda::gemm<T>(ctx, false, true, n, r, in, 1.f, x, in, A, in, 0.f, sc.t.data(), r);
  cuda::gemm<T>(ctx, false, true, n, out, r, s, sc.t.data(), r, B, r, 1.f, y, out);
}

// dB += s·dyᵀ·t, dA += dtᵀ·x, dx += dt·A with t = x·Aᵀ, dt = s·dy·B (model/lora_linear.h)
template <class T>
void lora_bwd(Context& ctx, const T* x, const T* A, const T* B, float s, const T* dy, T* dx, T* dA, T* dB, int64_t n,
              int64_t in, int64_t out, int64_t r, FfnScratch<T>& sc) {
  if (n == 0) return;
  if (dB) {
    sc.t.resize(size_t(n * r));
    cuda::gemm<T>(ctx, false, true, n, r, in, 1.f, x, in, A, in, 0.f, sc.t.data(), r);
    cuda::gemm<T>(ctx, true, false, out, r, n, s, dy, out, sc.t.data(), r, 1.f, dB, r);
  }
  if (!dA && !dx) return;
  sc.dt.resize(size_t(n * r));
  cuda::gemm<T>(ctx, false, false, n, r, out, s, dy, out, B, r, 0.f, sc.dt.data(), r);
  if (dA) cuda::gemm<T>(ctx, true, false, r, in, n, 1.f, sc.dt.data(), r, x, in, 1.f, dA, in);
  if (dx) cuda::gemm<T>(ctx, false, false, n, in, r, 1.f, sc.dt.data(), r, A, in, 1.f, dx, in);
}

// p's tensor on `to`: at offset remap(p − from), or p − from without a remap.
template <class T>
T* move(const float* p, const float* from, T* to, const OffsetRemap& remap) {
  if (!p) return nullptr;
  return to + (remap ? remap(p - from) : p - from);
}

template <class T>
FfnView<T> move(const FfnView<float>& f, const float* from, T* to, const OffsetRemap& r) {
  FfnView<T> o;
  o.gate = move(f.gate, from, to, r), o.up = move(f.up, from, to, r), o.down = move(f.down, from, to, r);
  o.gate_A = move(f.gate_A, from, to, r), o.gate_B = move(f.gate_B, from, to, r);
  o.up_A = move(f.up_A, from, to, r), o.up_B = move(f.up_B, from, to, r);
  o.down_A = move(f.down_A, from, to, r), o.down_B = move(f.down_B, from, to, r);
  return o;
}

}  // namespace

template <class T>
ModelView<T> rebase(const ModelView<float>& v, const float* from, T* to, const OffsetRemap& r) {
  ModelView<T> o;
  o.embed = move(v.embed, from, to, r), o.final_norm = move(v.final_norm, from, to, r);
  o.lm_head = move(v.lm_head, from, to, r);
  for (const LayerView<float>& l : v.layers) {
    LayerView<T> m;
    m.ln_attn = move(l.ln_attn, from, to, r), m.ln_ffn = move(l.ln_ffn, from, to, r);
    m.wq = move(l.wq, from, to, r), m.wk = move(l.wk, from, to, r), m.wv = move(l.wv, from, to, r);
    m.wo = move(l.wo, from, to, r);
    m.bq = move(l.bq, from, to, r), m.bk = move(l.bk, from, to, r), m.bv = move(l.bv, from, to, r);
    m.q_norm = move(l.q_norm, from, to, r), m.k_norm = move(l.k_norm, from, to, r);
    m.moe = l.moe;
    m.router = move(l.router, from, to, r);
    for (const auto& e : l.experts) m.experts.push_back(move(e, from, to, r));
    m.shared = move(l.shared, from, to, r);
    m.shared_gate = move(l.shared_gate, from, to, r);
    m.dense = move(l.dense, from, to, r);
    o.layers.push_back(std::move(m));
  }
  return o;
}

template <class T>
void ffn_fwd(Context& ctx, const FfnView<T>& w, const T* x, int64_t n, int64_t H, int64_t I, T* g, T* u, T* a,
             T* out, const LoraDims& lo, FfnScratch<T>& s) {
  if (n == 0) return;
  cuda::linear_fwd<T>(ctx, x, w.gate, nullptr, g, n, H, I);
  if (w.has_lora()) lora_fwd<T>(ctx, x, w.gate_A, w.gate_B, lo.scale, g, n, H, I, lo.rank, s);
  cuda::linear_fwd<T>(ctx, x, w.up, nullptr, u, n, H, I);
  if (w.has_lora()) lora_fwd<T>(ctx, x, w.up_A, w.up_B, lo.scale, u, n, H, I, lo.rank, s);
  cuda::swiglu_fwd<T>(ctx, g, u, a, n * I);
  cuda::linear_fwd<T>(ctx, a, w.down, nullptr, out, n, I, H);
  if (w.has_lora()) lora_fwd<T>(ctx, a, w.down_A, w.down_B, lo.scale, out, n, I, H, lo.rank, s);
}

template <class T>
void ffn_bwd(Context& ctx, const FfnView<T>& w, const FfnView<T>& gw, const T* x, int64_t n, int64_t H, int64_t I,
             const T* g, const T* u, const T* a, const T* dout, T* dx, const LoraDims& lo, FfnScratch<T>& s) {
  if (n == 0) return;
  const bool lora = w.has_lora();
  const bool lower = dx || gw.gate || gw.up || gw.gate_A || gw.gate_B || gw.up_A || gw.up_B;
  if (lower) {
    s.da.resize(size_t(n * I)), s.dg.resize(size_t(n * I)), s.du.resize(size_t(n * I));
    s.da.zero(ctx.stream()), s.dg.zero(ctx.stream()), s.du.zero(ctx.stream());
  }
  T* da = lower ? s.da.data() : nullptr;
  cuda::linear_bwd<T>(ctx, a, w.down, dout, da, gw.down, nullptr, n, I, H);
  if (lora) lora_bwd<T>(ctx, a, w.down_A, w.down_B, lo.scale, dout, da, gw.down_A, gw.down_B, n, I, H, lo.rank, s);
  if (!lower) return;
  cuda::swiglu_bwd<T>(ctx, g, u, da, s.dg.data(), s.du.data(), n * I);
  cuda::linear_bwd<T>(ctx, x, w.gate, s.dg.data(), dx, gw.gate, nullptr, n, H, I);
  if (lora)
    lora_bwd<T>(ctx, x, w.gate_A, w.gate_B, lo.scale, s.dg.data(), dx, gw.gate_A, gw.gate_B, n, H, I, lo.rank, s);
  cuda::linear_bwd<T>(ctx, x, w.up, s.du.data(), dx, gw.up, nullptr, n, H, I);
  if (lora) lora_bwd<T>(ctx, x, w.up_A, w.up_B, lo.scale, s.du.data(), dx, gw.up_A, gw.up_B, n, H, I, lo.rank, s);
}

#define INST(T)                                                                                                     \
  template ModelView<T> rebase<T>(const ModelView<float>&, const float*, T*, const OffsetRemap&);                 \
  template void ffn_fwd<T>(Context&, const FfnView<T>&, const T*, int64_t, int64_t, int64_t, T*, T*, T*, T*,        \
                           const LoraDims&, FfnScratch<T>&);                                                        \
  template void ffn_bwd<T>(Context&, const FfnView<T>&, const FfnView<T>&, const T*, int64_t, int64_t, int64_t,     \
                           const T*, const T*, const T*, const T*, T*, const LoraDims&, FfnScratch<T>&);
INST(float)
INST(bf16)
#undef INST

}  // namespace wattmoe::gpu
