// CPU reference of the MoE block's row gathers and combines (ops/rows.h).
#include "ops/rows.h"

#include <algorithm>
#include <vector>

namespace wattmoe::ops {

template <class T>
void gather_rows(const T* src, const int32_t* idx, const T* scale, T* dst, int64_t rows, int64_t H) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + int64_t(idx[r]) * H;
    const T c = scale ? scale[r] : T(1);
    for (int64_t j = 0; j < H; ++j) dst[r * H + j] = c * s[j];
  }
}

template <class T>
void sum_rows(const T* src, const int64_t* row_of, const T* weight, T* dst, int64_t N, int k, int64_t H) {
  std::vector<T> acc(static_cast<size_t>(H));
  for (int64_t t = 0; t < N; ++t) {
    std::fill(acc.begin(), acc.end(), T(0));
    for (int s = 0; s < k; ++s) {
      const int64_t r = row_of[t * k + s];
      if (r < 0) continue;
      const T w = weight ? weight[t * k + s] : T(1);
      for (int64_t j = 0; j < H; ++j) acc[size_t(j)] += w * src[r * H + j];
    }
    for (int64_t j = 0; j < H; ++j) dst[t * H + j] += acc[size_t(j)];
  }
}

// Four rows at a time (four independent sums in flight); each row's sum is still in column order.
template <class T>
void row_dots(const T* a, const int32_t* idx, const T* b, T* out, int64_t rows, int64_t H) {
  constexpr int64_t kRows = 4;
  for (int64_t r = 0; r < rows; r += kRows) {
    const int64_t m = std::min(kRows, rows - r);
    const T* x[kRows];
    const T* y[kRows];
    T dot[kRows] = {};
    for (int64_t q = 0; q < kRows; ++q) {
      const int64_t rq = r + std::min(q, m - 1);  // short tail: repeat the last row (its result is not stored)
      x[q] = a + int64_t(idx[rq]) * H, y[q] = b + rq * H;
    }
    for (int64_t j = 0; j < H; ++j)
      for (int64_t q = 0; q < kRows; ++q) dot[q] += x[q][j] * y[q][j];
    for (int64_t q = 0; q < m; ++q) out[r + q] = dot[q];
  }
}

#define WATTMOE_ROWS(T)                                                                        \
  template void gather_rows<T>(const T*, const int32_t*, const T*, T*, int64_t, int64_t);      \
  template void sum_rows<T>(const T*, const int64_t*, const T*, T*, int64_t, int, int64_t);    \
  template void row_dots<T>(const T*, const int32_t*, const T*, T*, int64_t, int64_t);
WATTMOE_ROWS(float)
WATTMOE_ROWS(double)
#undef WATTMOE_ROWS

}  // namespace wattmoe::ops
