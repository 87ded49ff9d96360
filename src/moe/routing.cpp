#include "moe/routing.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace wattmoe {

void Routing::reset(int64_t n_tokens, int k_slots, int n_experts) {
  tokens = n_tokens, k = k_slots, experts = n_experts;
  expert.assign(size_t(n_tokens * k_slots), -1);
  counts.assign(size_t(n_experts), 0);
}

void Routing::recount() {
  counts.assign(size_t(experts), 0);
  for (int32_t e : expert)
    if (e >= 0) ++counts[size_t(e)];
}

void Routing::append_rows(const Routing& src) {
  if (experts == 0 && tokens == 0) experts = src.experts;
  WATTMOE_CHECK(src.experts == experts, "append_rows: {} experts after {}", src.experts, experts);
  const int k_new = std::max(k, src.k);
  std::vector<int32_t> rows(size_t((tokens + src.tokens) * k_new), -1);
  for (int64_t t = 0; t < tokens; ++t)
    std::copy_n(expert.begin() + t * k, k, rows.begin() + t * k_new);
  for (int64_t t = 0; t < src.tokens; ++t)
    std::copy_n(src.expert.begin() + t * src.k, src.k, rows.begin() + (tokens + t) * k_new);
  expert = std::move(rows);
  tokens += src.tokens, k = k_new;
  counts.resize(size_t(experts), 0);
  for (int e = 0; e < experts; ++e) counts[size_t(e)] += src.counts[size_t(e)];
}

double Routing::mean_experts_per_token() const {
  if (tokens == 0) return 0;
  return double(std::accumulate(counts.begin(), counts.end(), int64_t(0))) / double(tokens);
}

int Routing::distinct_experts() const {
  return int(std::count_if(counts.begin(), counts.end(), [](int32_t c) { return c > 0; }));
}

template <class T>
void select_topk(const T* scores, int64_t n, int E, int k, Routing& out) {
  WATTMOE_CHECK(k >= 1 && k <= E, "k={} E={}", k, E);
  out.reset(n, k, E);
  std::vector<int32_t> idx(static_cast<size_t>(E));
  for (int64_t t = 0; t < n; ++t) {
    const T* s = scores + t * E;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    std::copy(idx.begin(), idx.begin() + k, out.expert.begin() + t * k);
  }
  out.recount();
}

template <class T>
void route_weights(const Routing& r, const T* probs, bool renorm, T* weight) {
  const int k = r.k, E = r.experts;
  for (int64_t t = 0; t < r.tokens; ++t) {
    T sum = 0;
    for (int s = 0; s < k; ++s) {
      const int32_t e = r.expert[t * k + s];
      weight[t * k + s] = T(0);
      if (e >= 0) sum += (weight[t * k + s] = probs[t * E + e]);
    }
    if (renorm && sum > T(0))
      for (int s = 0; s < k; ++s) weight[t * k + s] /= sum;
  }
}

template <class T>
void route_weights_bwd(const Routing& r, const T* probs, const T* weight, const T* dweight, bool renorm, T* dprobs) {
  const int k = r.k, E = r.experts;
  for (int64_t t = 0; t < r.tokens; ++t) {
    T sum = 0, wdot = 0;
    for (int s = 0; s < k; ++s) {
      const int32_t e = r.expert[t * k + s];
      if (e < 0) continue;
      sum += probs[t * E + e];
      wdot += dweight[t * k + s] * weight[t * k + s];
    }
    for (int s = 0; s < k; ++s) {
      const int32_t e = r.expert[t * k + s];
      if (e < 0) continue;
      dprobs[t * E + e] += renorm && sum > T(0) ? (dweight[t * k + s] - wdot) / sum : dweight[t * k + s];
    }
  }
}

#define WATTMOE_ROUTING_INSTANTIATE(T)                                                      \
  template void select_topk<T>(const T*, int64_t, int, int, Routing&);                      \
  template void route_weights<T>(const Routing&, const T*, bool, T*);                       \
  template void route_weights_bwd<T>(const Routing&, const T*, const T*, const T*, bool, T*);
WATTMOE_ROUTING_INSTANTIATE(float)
WATTMOE_ROUTING_INSTANTIATE(double)
#undef WATTMOE_ROUTING_INSTANTIATE

}  // namespace wattmoe
