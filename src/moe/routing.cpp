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

template void select_topk<float>(const float*, int64_t, int, int, Routing&);
template void select_topk<double>(const double*, int64_t, int, int, Routing&);

}  // namespace wattmoe
