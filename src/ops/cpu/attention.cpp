#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace wattmoe::ops {

template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, T* probs, const AttnShape& s) {
  WATTMOE_CHECK(s.n_heads % s.n_kv == 0 && s.Tk >= s.pos0 + s.Tq);
  const int64_t group = s.n_heads / s.n_kv, hd = s.hd;
  const T scale = T(1) / std::sqrt(T(hd));
  // Heads are independent: parallel over heads, each with its own score row.
  default_pool().parallel_for(s.n_heads, [&](int64_t h0, int64_t h1) {
    std::vector<T> row(size_t(s.Tk));
    for (int64_t h = h0; h < h1; ++h) {
      const int64_t kvh = h / group;
      for (int64_t t = 0; t < s.Tq; ++t) {
        const T* qt = q + t * s.q_stride + h * hd;
        const int64_t n = s.pos0 + t + 1;  // visible keys
        T mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          const T* kj = k + j * s.kv_stride + kvh * hd;
          T dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += qt[d] * kj[d];
          row[j] = dot * scale;
          mx = std::max(mx, row[j]);
        }
        T sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - mx));
        const T inv = T(1) / sum;
        T* o = out + t * s.q_stride + h * hd;
        std::fill(o, o + hd, T(0));
        for (int64_t j = 0; j < n; ++j) {
          const T p = row[j] * inv;
          const T* vj = v + j * s.kv_stride + kvh * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vj[d];
          row[j] = p;
        }
        if (probs) {
          T* pr = probs + (h * s.Tq + t) * s.Tk;
          std::copy(row.begin(), row.begin() + n, pr);
          std::fill(pr + n, pr + s.Tk, T(0));
        }
      }
    }
  });
}

template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv,
                   const AttnShape& s) {
  const int64_t group = s.n_heads / s.n_kv, hd = s.hd;
  const T scale = T(1) / std::sqrt(T(hd));
  // Parallel over KV heads: each owns its dk/dv slice and the dq slices of its query heads.
  default_pool().parallel_for(s.n_kv, [&](int64_t g0, int64_t g1) {
    std::vector<T> dp(size_t(s.Tk));
    for (int64_t kvh = g0; kvh < g1; ++kvh) {
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int64_t t = 0; t < s.Tq; ++t) {
          const int64_t n = s.pos0 + t + 1;
          const T* p = probs + (h * s.Tq + t) * s.Tk;
          const T* dot = dout + t * s.q_stride + h * hd;
          T sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            const T* vj = v + j * s.kv_stride + kvh * hd;
            T a = 0;
            for (int64_t d = 0; d < hd; ++d) a += dot[d] * vj[d];
            dp[j] = a;
            sum += a * p[j];
          }
          const T* qt = q + t * s.q_stride + h * hd;
          T* dqt = dq + t * s.q_stride + h * hd;
          for (int64_t j = 0; j < n; ++j) {
            const T ds = p[j] * (dp[j] - sum) * scale;  // ∂L/∂score (pre-scale logits)
            const T* kj = k + j * s.kv_stride + kvh * hd;
            T* dkj = dk + j * s.kv_stride + kvh * hd;
            T* dvj = dv + j * s.kv_stride + kvh * hd;
            for (int64_t d = 0; d < hd; ++d) {
              dqt[d] += ds * kj[d];
              dkj[d] += ds * qt[d];
              dvj[d] += p[j] * dot[d];
            }
          }
        }
      }
    }
  });
}

template void attention_fwd<float>(const float*, const float*, const float*, float*, float*, const AttnShape&);
template void attention_fwd<double>(const double*, const double*, const double*, double*, double*, const AttnShape&);
template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*, float*, float*,
                                   float*, const AttnShape&);
template void attention_bwd<double>(const double*, const double*, const double*, const double*, const double*, double*,
                                    double*, double*, const AttnShape&);

}  // namespace wattmoe::ops
