// SwiGLU FFN (+ LoRA branch) on the GPU, op for op as ffn_forward/ffn_backward and lora_fwd/lora_bwd of the CPU model,
// over the rows of one FFN or of every routed expert at once (each op one grouped product: cuda::gemm_grouped); and
// rebase (weight views on device buffers).
#include <array>

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
  // For each of `projs` projections (of one shape) and each expert with rows, f(p, e, r0, n) gives its operands; a
  // null C leaves it out. Then one gemm_grouped: C = alpha·op(A)·op(B) + beta·C, each group of N columns; the
  // projections share it when there are several experts (one FFN keeps a product per call: cuBLAS at its sizes).
  // Groups of one launch must not share a C that they accumulate into (beta ≠ 0 or split K would race).
  template <class F>
  void gemm(size_t projs, bool ta, bool tb, int64_t N, float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc,
            F f) const {
    std::vector<cuda::GemmGroup<T>> groups;
    const auto launch = [&] {
      if (!groups.empty()) cuda::gemm_grouped<T>(ctx, ta, tb, groups, N, alpha, lda, ldb, beta, ldc);
      groups.clear();
    };
    for (size_t p = 0; p < projs; ++p) {
      for (size_t e = 0; e + 1 < off.size(); ++e) {
        const int64_t n = off[e + 1] - off[e];
        if (n == 0) continue;
        const cuda::GemmGroup<T> g = f(p, e, off[e], n);
        if (g.C) groups.push_back(g);
      }
      if (off.size() <= 2) launch();
    }
    launch();
  }
  int64_t rows() const { return off.back(); }
};

// Projections of one shape that read the same rows x (gate and up; or down alone), with their per-projection row
// arrays (outputs, or output gradients): each op below is one launch for all of them.
template <class T, size_t P>
using Projs = std::array<Proj<T>, P>;
template <class T, size_t P>
using Rows = std::array<T*, P>;
template <class T, size_t P>
using RowsIn = std::array<const T*, P>;

// y_p += s·(x·A_pᵀ)·B_pᵀ for every projection and expert (ops/lora.h); t_p = x·A_pᵀ in scratch.
template <class T, size_t P>
void lora_fwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, const Projs<T, P>& ps, const T* x, float s,
              const Rows<T, P>& y, int64_t in, int64_t out, int64_t r, FfnScratch<T>& sc) {
  const int64_t R = G.rows();
  sc.t.resize(size_t(P * R * r));
  T* t = sc.t.data();
  G.gemm(P, false, true, r, 1.f, in, in, 0.f, r, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*ps[p].A, t + (p * R + r0) * r, n, in};
  });
  G.gemm(P, false, true, out, s, r, r, 1.f, out, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{t + (p * R + r0) * r, w[e].*ps[p].B, y[p] + r0 * out, n, r};
  });
}

// The projections' forward, y_p = x·W_pᵀ (+ its LoRA branch unless W already holds it), for every expert.
template <class T, size_t P>
void proj_fwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, const Projs<T, P>& ps, const T* x,
              const Rows<T, P>& y, int64_t in, int64_t out, const LoraDims& lo, FfnScratch<T>& sc) {
  G.gemm(P, false, true, out, 1.f, in, in, 0.f, out, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*ps[p].W, y[p] + r0 * out, n, in};
  });
  if (w.front().has_lora() && !lo.merged) lora_fwd(G, w, ps, x, lo.scale, y, in, out, lo.rank, sc);
}

// Backward of proj_fwd for every projection and expert: dx_e += Σ_p dy_p·W_p (dx_of(e, r0): expert e's dx rows, or
// null; one launch per projection, as they add into the same rows), dW_p += dy_pᵀ·x; LoRA: dB += s·dyᵀ·t, dA +=
// dtᵀ·x, dx += dt·A with t = x·Aᵀ, dt = s·dy·B (ops/lora.h). With lo.merged, W already holds s·B·A, so dy·W
// is the whole dx and the dt·A product is not taken.
template <class T, size_t P, class DxOf>
void proj_bwd(const Grouped<T>& G, const std::vector<FfnView<T>>& w, const std::vector<FfnView<T>>& gw,
              const Projs<T, P>& ps, const T* x, const RowsIn<T, P>& dy, DxOf dx_of, int64_t in, int64_t out,
              const LoraDims& lo, FfnScratch<T>& sc) {
  const int64_t R = G.rows();
  for (size_t q = 0; q < P; ++q)
    G.gemm(1, false, false, in, 1.f, out, in, 1.f, in, [&](size_t, size_t e, int64_t r0, int64_t n) {
      return cuda::GemmGroup<T>{dy[q] + r0 * out, w[e].*ps[q].W, dx_of(e, r0), n, out};
    });
  G.gemm(P, true, false, in, 1.f, out, in, 1.f, in, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dy[p] + r0 * out, x + r0 * in, gw[e].*ps[p].W, out, n};
  });
  if (!w.front().has_lora()) return;
  const int64_t r = lo.rank;
  const float s = lo.scale;
  sc.t.resize(size_t(P * R * r)), sc.dt.resize(size_t(P * R * r));
  T *t = sc.t.data(), *dt = sc.dt.data();
  const auto at = [&](T* base, size_t p, int64_t r0) { return base + (int64_t(p) * R + r0) * r; };
  G.gemm(P, false, true, r, 1.f, in, in, 0.f, r, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{x + r0 * in, w[e].*ps[p].A, gw[e].*ps[p].B ? at(t, p, r0) : nullptr, n, in};
  });
  G.gemm(P, true, false, r, s, out, r, 1.f, r, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{dy[p] + r0 * out, at(t, p, r0), gw[e].*ps[p].B, out, n};
  });
  G.gemm(P, false, false, r, s, out, r, 0.f, r, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    const bool need = gw[e].*ps[p].A || (!lo.merged && dx_of(e, r0));
    return cuda::GemmGroup<T>{dy[p] + r0 * out, w[e].*ps[p].B, need ? at(dt, p, r0) : nullptr, n, out};
  });
  G.gemm(P, true, false, in, 1.f, r, in, 1.f, in, [&](size_t p, size_t e, int64_t r0, int64_t n) {
    return cuda::GemmGroup<T>{at(dt, p, r0), x + r0 * in, gw[e].*ps[p].A, r, n};
  });
  if (lo.merged) return;
  for (size_t q = 0; q < P; ++q)
    G.gemm(1, false, false, in, 1.f, r, in, 1.f, in, [&](size_t, size_t e, int64_t r0, int64_t n) {
      return cuda::GemmGroup<T>{at(dt, q, r0), w[e].*ps[q].A, dx_of(e, r0), n, r};
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
  proj_fwd<T, 2>(G, w, {kGate<T>, kUp<T>}, x, {g, u}, H, I, lo, s);
  cuda::swiglu_fwd<T>(ctx, g, u, a, G.rows() * I);
  proj_fwd<T, 1>(G, w, {kDown<T>}, a, {out}, I, H, lo, s);
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
  proj_bwd<T, 1>(G, w, gw, {kDown<T>}, a, {dout},
                 [&](size_t e, int64_t r0) { return lower[e] ? da + r0 * I : nullptr; }, I, H, lo, s);
  if (!any_lower) return;
  cuda::swiglu_bwd<T>(ctx, g, u, da, s.dg.data(), s.du.data(), R * I);
  auto dx_of = [&](size_t, int64_t r0) { return dx ? dx + r0 * H : nullptr; };
  proj_bwd<T, 2>(G, w, gw, {kGate<T>, kUp<T>}, x, {s.dg.data(), s.du.data()}, dx_of, H, I, lo, s);
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
