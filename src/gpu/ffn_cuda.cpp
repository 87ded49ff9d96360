// SwiGLU FFN (+ LoRA branch) on the GPU, op for op as ffn_forward/ffn_backward and lora_fwd/lora_bwd of the CPU model,
// over the rows of one FFN or of every routed expert at once (each op one grouped product: cuda::gemm_grouped); and
// rebase (weight views on device buffers).
#include "gpu/device_acts.h"

namespace wattmoe::gpu {

namespace {

// A projection of the FFN: its weight W [out, in] and LoRA factors A [r, in], B [out, r] in FfnView.
template <class T>
struct Proj {
  T* FfnView<T>::*W;
  T* FfnView<T>::*A;
  T* FfnView<T>::*B;
};
template <class T>
constexpr Proj<T> kGate{&FfnView<T>::gate, &FfnView<T>::gate_A, &FfnView<T>::gate_B};
template <class T>
constexpr Proj<T> kUp{&FfnView<T>::up, &FfnView<T>::up_A, &FfnView<T>::up_B};
template <class T>
constexpr Proj<T> kDown{&FfnView<T>::down, &FfnView<T>::down_A, &FfnView<T>::down_B};

// The products of one FFN op over every expert at once: expert e's rows are [off[e], off[e+1]) of each row array.
template <class T>
struct Grouped {
  Context& ctx;
  const std::vector<int64_t>& off;
  // For each expert with rows, f(e, r0, n) gives its operands; a null C leaves the expert out. Then one
  // gemm_grouped: C_e = alpha·op(A_e)·op(B_e) + beta·C_e, each group of N columns.
  template <class F>
  void gemm(bool ta, bool tb, int64_t N, float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc, F f) const {
    std::vector<cuda::GemmGroup<T>> groups;
    for (size_t e = 0; e + 1 < off.size(); ++e) {
      const int64_t n = off[e + 1] - off[e];
      if (n == 0) continue;
      const cuda::GemmGroup<T> g = f(e, off[e], n);
      if (g.C) groups.push_back(g);
    }
    if (!groups.empty()) cuda::gemm_grouped<T>(ctx, ta, tb, groups, N, alpha, lda, ldb, beta, ldc);
  }
  int64_t rows() const { return off.back(); }
};

// y_e[n, out] += s·(x_e·A_eᵀ)·B_eᵀ for every expert (model/lora_linear.h)
template <class T>
void lora_fwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, Proj<T> p, const T* x, float s, T* y,
              int64_t in, int64_t out, int64_t r, FfnScratch<T>& sc) {
  sc.t.resize(size_t(G.rows() * r));
  T* t = sc.t.data();
  G.gemm(false, true, r, 1.f, in, in, 0.f, r, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*p.A, t + r0 * r, n, in};
  });
  G.gemm(false, true, out, s, r, r, 1.f, out, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{t + r0 * r, w[e].*p.B, y + r0 * out, n, r};
  });
}

// One projection's forward, y_e = x_e·W_eᵀ (+ its LoRA branch), for every expert.
template <class T>
void proj_fwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, Proj<T> p, const T* x, T* y, int64_t in,
              int64_t out, const LoraDims& lo, FfnScratch<T>& sc) {
  G.gemm(false, true, out, 1.f, in, in, 0.f, out, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*p.W, y + r0 * out, n, in};
  });
  if (w.front().has_lora()) lora_fwd(G, w, p, x, lo.scale, y, in, out, lo.rank, sc);
}

// Backward of proj_fwd for every expert: dx_e += dy_e·W_e (dx_of(e, r0): expert e's dx rows, or null), dW_e +=
// dy_eᵀ·x_e; LoRA: dB += s·dyᵀ·t, dA += dtᵀ·x, dx += dt·A with t = x·Aᵀ, dt = s·dy·B (model/lora_linear.h).
template <class T, class DxOf>
void proj_bwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, const std::vector<FfnView<T>>& gw, Proj<T> p,
              const T* x, const T* dy, DxOf dx_of, int64_t in, int64_t out, const LoraDims& lo, FfnScratch<T>& sc) {
  G.gemm(false, false, in, 1.f, out, in, 1.f, in, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dy + r0 * out, w[e].*p.W, dx_of(e, r0), n, out};
  });
  G.gemm(true, false, in, 1.f, out, in, 1.f, in, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dy + r0 * out, x + r0 * in, gw[e].*p.W, out, n};
  });
  if (!w.front().has_lora()) return;
  const int64_t r = lo.rank;
  const float s = lo.scale;
  sc.t.resize(size_t(G.rows() * r)), sc.dt.resize(size_t(G.rows() * r));
  T *t = sc.t.data(), *dt = sc.dt.data();
  G.gemm(false, true, r, 1.f, in, in, 0.f, r, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*p.A, gw[e].*p.B ? t + r0 * r : nullptr, n, in};
  });
  G.gemm(true, false, r, s, out, r, 1.f, r, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dy + r0 * out, t + r0 * r, gw[e].*p.B, out, n};
  });
  G.gemm(false, false, r, s, out, r, 0.f, r, [&](size_t e, int64_t r0, int64_t n) {
    const bool need = gw[e].*p.A || dx_of(e, r0);
    return cuda::GemmGroup<T>{dy + r0 * out, w[e].*p.B, need ? dt + r0 * r : nullptr, n, out};
  });
  G.gemm(true, false, in, 1.f, r, in, 1.f, in, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dt + r0 * r, x + r0 * in, gw[e].*p.A, r, n};
  });
  G.gemm(false, false, in, 1.f, r, in, 1.f, in, [&](size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dt + r0 * r, w[e].*p.A, dx_of(e, r0), n, r};
  });
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
void experts_fwd(Context& ctx, const std::vector<FfnView<T>>& w, const std::vector<int64_t>& off, const T* x,
                 int64_t H, int64_t I, T* g, T* u, T* a, T* out, const LoraDims& lo, FfnScratch<T>& s) {
  const Grouped<T> G{ctx, off};
  if (G.rows() == 0) return;
  proj_fwd(G, w, kGate<T>, x, g, H, I, lo, s);
  proj_fwd(G, w, kUp<T>, x, u, H, I, lo, s);
  cuda::swiglu_fwd<T>(ctx, g, u, a, G.rows() * I);
  proj_fwd(G, w, kDown<T>, a, out, I, H, lo, s);
}

template <class T>
void experts_bwd(Context& ctx, const std::vector<FfnView<T>>& w, const std::vector<FfnView<T>>& gw,
                 const std::vector<int64_t>& off, const T* x, int64_t H, int64_t I, const T* g, const T* u,
                 const T* a, const T* dout, T* dx, const LoraDims& lo, FfnScratch<T>& s) {
  const Grouped<T> G{ctx, off};
  const int64_t R = G.rows();
  if (R == 0) return;
  // The gate and up projections' backward runs for the experts that need it (dx, or a gradient of theirs below down).
  std::vector<char> lower(w.size());
  bool any_lower = false;
  for (size_t e = 0; e < w.size(); ++e) {
    const FfnView<T>& ge = gw[e];
    lower[e] = dx || ge.gate || ge.up || ge.gate_A || ge.gate_B || ge.up_A || ge.up_B;
    any_lower = any_lower || lower[e];
  }
  if (any_lower) {
    s.da.resize(size_t(R * I)), s.dg.resize(size_t(R * I)), s.du.resize(size_t(R * I));
    s.da.zero(ctx.stream()), s.dg.zero(ctx.stream()), s.du.zero(ctx.stream());
  }
  T* da = s.da.data();
  proj_bwd(G, w, gw, kDown<T>, a, dout, [&](size_t e, int64_t r0) { return lower[e] ? da + r0 * I : nullptr; }, I,
           H, lo, s);
  if (!any_lower) return;
  cuda::swiglu_bwd<T>(ctx, g, u, da, s.dg.data(), s.du.data(), R * I);
  auto dx_of = [&](size_t, int64_t r0) { return dx ? dx + r0 * H : nullptr; };
  proj_bwd(G, w, gw, kGate<T>, x, s.dg.data(), dx_of, H, I, lo, s);
  proj_bwd(G, w, gw, kUp<T>, x, s.du.data(), dx_of, H, I, lo, s);
}

template <class T>
void ffn_fwd(Context& ctx, const FfnView<T>& w, const T* x, int64_t n, int64_t H, int64_t I, T* g, T* u, T* a,
             T* out, const LoraDims& lo, FfnScratch<T>& s) {
  experts_fwd<T>(ctx, {w}, {0, n}, x, H, I, g, u, a, out, lo, s);
}

template <class T>
void ffn_bwd(Context& ctx, const FfnView<T>& w, const FfnView<T>& gw, const T* x, int64_t n, int64_t H, int64_t I,
             const T* g, const T* u, const T* a, const T* dout, T* dx, const LoraDims& lo, FfnScratch<T>& s) {
  experts_bwd<T>(ctx, {w}, {gw}, {0, n}, x, H, I, g, u, a, dout, dx, lo, s);
}

#define INST(T)                                                                                                     \
  template ModelView<T> rebase<T>(const ModelView<float>&, const float*, T*, const OffsetRemap&);                 \
  template void ffn_fwd<T>(Context&, const FfnView<T>&, const T*, int64_t, int64_t, int64_t, T*, T*, T*, T*,        \
                           const LoraDims&, FfnScratch<T>&);                                                        \
  template void ffn_bwd<T>(Context&, const FfnView<T>&, const FfnView<T>&, const T*, int64_t, int64_t, int64_t,     \
                           const T*, const T*, const T*, const T*, T*, const LoraDims&, FfnScratch<T>&);        \
  template void experts_fwd<T>(Context&, const std::vector<FfnView<T>>&, const std::vector<int64_t>&, const T*,   \
                               int64_t, int64_t, T*, T*, T*, T*, const LoraDims&, FfnScratch<T>&);              \
  template void experts_bwd<T>(Context&, const std::vector<FfnView<T>>&, const std::vector<FfnView<T>>&,          \
                               const std::vector<int64_t>&, const T*, int64_t, int64_t, const T*, const T*,      \
                               const T*, const T*, T*, const LoraDims&, FfnScratch<T>&);
INST(float)
INST(bf16)
#undef INST

}  // namespace wattmoe::gpu
