#include "moe/dispatch.h"

#include <algorithm>
#include <cstddef>

namespace wattmoe {

Dispatch build_dispatch(const Routing& r) {
  Dispatch d;
  d.offsets.assign(size_t(r.experts) + 1, 0);
  for (int32_t e : r.expert)
    if (e >= 0) ++d.offsets[size_t(e) + 1];
  for (int e = 0; e < r.experts; ++e) d.offsets[e + 1] += d.offsets[e];
  d.token.resize(size_t(d.offsets.back()));
  d.slot.resize(d.token.size());
  std::vector<int64_t> fill(d.offsets.begin(), d.offsets.end() - 1);
  for (int64_t t = 0; t < r.tokens; ++t)
    for (int s = 0; s < r.k; ++s) {
      int32_t e = r.expert[size_t(t * r.k + s)];
      if (e < 0) continue;
      int64_t row = fill[size_t(e)]++;
      d.token[size_t(row)] = int32_t(t);
      d.slot[size_t(row)] = s;
    }
  return d;
}

std::vector<int64_t> slot_rows(const Dispatch& d, int64_t tokens, int k) {
  std::vector<int64_t> out(size_t(tokens * k), -1);
  for (int64_t r = 0; r < d.rows(); ++r) out[size_t(d.token[size_t(r)]) * size_t(k) + size_t(d.slot[size_t(r)])] = r;
  return out;
}

std::vector<int64_t> slot_rows_in_row_order(const Dispatch& d, int64_t tokens, int k) {
  std::vector<int64_t> out = slot_rows(d, tokens, k);
  for (int64_t t = 0; t < tokens; ++t) std::sort(out.begin() + t * k, out.begin() + (t + 1) * k);
  return out;
}

}  // namespace wattmoe
