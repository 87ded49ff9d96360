#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "ops/cpu/vec_math.h"
#include "ops/linear.h"

namespace wattmoe::ops {

namespace {

WATTMOE_CLONES void exp_shifted_f32(float* row, int64_t n, float mx) {
  for (int64_t j = 0; j < n; ++j) row[j] = exp_fast(row[j] - mx);
}

// One row of scores → probabilities over its n visible keys, zeros for the Tk − n masked ones. The sum keeps key
// order (a serial loop), so the row is the same whichever build of the exp loop runs.
template <class T>
void softmax_causal_row(T* row, int64_t n, int64_t Tk) {
  const T mx = *std::max_element(row, row + n);
  if constexpr (std::is_same_v<T, float>) {
    exp_shifted_f32(row, n, mx);
  } else {
    for (int64_t j = 0; j < n; ++j) row[j] = vexp<T>(row[j] - mx);
  }
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += row[j];
  const T inv = T(1) / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
  std::fill(row + n, row + Tk, T(0));
}

}  // namespace

// Per head: scores = scale · Q Kᵀ and out = P V as GEMMs over strided head slices (the heads of a token are
// interleaved in its row), with the causal mask and softmax applied row by row in between.
template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, T* probs, const AttnShape& s) {
  WATTMOE_CHECK(s.n_heads % s.n_kv == 0 && s.Tk >= s.pos0 + s.Tq);
  const int64_t group = s.n_heads / s.n_kv, hd = s.hd;
  const T scale = T(1) / std::sqrt(T(hd));
  std::vector<T> scratch(probs ? 0 : static_cast<size_t>(s.Tq * s.Tk));
  for (int64_t h = 0; h < s.n_heads; ++h) {
    const int64_t kvh = h / group;
    T* P = probs ? probs + h * s.Tq * s.Tk : scratch.data();
    gemm<T>(false, true, s.Tq, s.Tk, hd, scale, q + h * hd, s.q_stride, k + kvh * hd, s.kv_stride, T(0), P, s.Tk);
    for (int64_t t = 0; t < s.Tq; ++t) softmax_causal_row<T>(P + t * s.Tk, s.pos0 + t + 1, s.Tk);
    gemm<T>(false, false, s.Tq, hd, s.Tk, T(1), P, s.Tk, v + kvh * hd, s.kv_stride, T(0), out + h * hd, s.q_stride);
  }
}

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv,
                   const AttnShape& s) {
  const int64_t group = s.n_heads / s.n_kv, hd = s.hd;
  const T scale = T(1) / std::sqrt(T(hd));
  std::vector<T> dS(static_cast<size_t>(s.Tq * s.Tk));
  for (int64_t h = 0; h < s.n_heads; ++h) {
    const int64_t kvh = h / group;
    const T* P = probs + h * s.Tq * s.Tk;
    const T* dO = dout + h * hd;
    // dP = dO Vᵀ (into dS), dV += Pᵀ dO
    gemm<T>(false, true, s.Tq, s.Tk, hd, T(1), dO, s.q_stride, v + kvh * hd, s.kv_stride, T(0), dS.data(), s.Tk);
    gemm<T>(true, false, s.Tk, hd, s.Tq, T(1), P, s.Tk, dO, s.q_stride, T(1), dv + kvh * hd, s.kv_stride);
    // dScore = P ⊙ (dP − Σ_j P·dP) · scale (masked entries have P = 0)
    for (int64_t t = 0; t < s.Tq; ++t) {
      const T* p = P + t * s.Tk;
      T* d = dS.data() + t * s.Tk;
      const int64_t n = s.pos0 + t + 1;
      T dot = 0;
      for (int64_t j = 0; j < n; ++j) dot += p[j] * d[j];
      for (int64_t j = 0; j < n; ++j) d[j] = p[j] * (d[j] - dot) * scale;
      std::fill(d + n, d + s.Tk, T(0));
    }
    gemm<T>(false, false, s.Tq, hd, s.Tk, T(1), dS.data(), s.Tk, k + kvh * hd, s.kv_stride, T(1), dq + h * hd,
            s.q_stride);
    gemm<T>(true, false, s.Tk, hd, s.Tq, T(1), dS.data(), s.Tk, q + h * hd, s.q_stride, T(1), dk + kvh * hd,
            s.kv_stride);
  }
}

template void attention_fwd<float>(const float*, const float*, const float*, float*, float*, const AttnShape&);
template void attention_fwd<double>(const double*, const double*, const double*, double*, double*, const AttnShape&);
template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*, float*, float*,
                                   float*, const AttnShape&);
template void attention_bwd<double>(const double*, const double*, const double*, const double*, const double*, double*,
                                    double*, double*, const AttnShape&);

}  // namespace wattmoe::ops
