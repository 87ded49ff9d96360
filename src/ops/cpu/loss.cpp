#include "ops/loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/scratch.h"
#include "core/thread_pool.h"

namespace wattmoe::ops {

namespace {
// Rows per thread below which threading costs more than it saves.
int64_t min_rows(int64_t V) { return rows_per_chunk(V, int64_t(1) << 13); }

// Σ over rows of per-row values, in row order (the same sum on any number of threads).
double sum_in_order(const double* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += v[i];
  return s;
}
}  // namespace

template <class T>
double nll_loss(const T* logits, const int32_t* targets, int64_t rows, int64_t V, T* dlogits, double scale) {
  for (int64_t i = 0; i < rows; ++i) WATTMOE_CHECK(targets[i] < V, "target {} >= vocab {}", targets[i], V);
  Scratch<double> per_row(size_t(std::max<int64_t>(rows, 1)));
  default_pool().parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const T* x = logits + i * V;
          T* dx = dlogits ? dlogits + i * V : nullptr;
          per_row[size_t(i)] = 0;
          if (targets[i] < 0) {
            if (dx) std::fill(dx, dx + V, T(0));
            continue;
          }
          const T mx = *std::max_element(x, x + V);
          double sum = 0;
          for (int64_t j = 0; j < V; ++j) sum += std::exp(double(x[j] - mx));
          const double lse = double(mx) + std::log(sum);
          per_row[size_t(i)] = lse - double(x[targets[i]]);
          if (dx) {
            for (int64_t j = 0; j < V; ++j) dx[j] = T(scale * std::exp(double(x[j]) - lse));
            dx[targets[i]] -= T(scale);
          }
        }
      },
      min_rows(V));
  return sum_in_order(per_row.data(), rows);
}

template <class T>
double entropy_loss(const T* logits, int64_t rows, int64_t V, T* dlogits, double scale) {
  Scratch<double> per_row(size_t(std::max<int64_t>(rows, 1)));
  default_pool().parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        std::vector<double> lp(static_cast<size_t>(V));
        for (int64_t i = b; i < e; ++i) {
          const T* x = logits + i * V;
          const T mx = *std::max_element(x, x + V);
          double sum = 0;
          for (int64_t j = 0; j < V; ++j) sum += std::exp(double(x[j] - mx));
          const double lse = double(mx) + std::log(sum);
          double h = 0;
          for (int64_t j = 0; j < V; ++j) {
            lp[j] = double(x[j]) - lse;
            h -= std::exp(lp[j]) * lp[j];
          }
          per_row[size_t(i)] = h;
          // ∂H/∂x_j = −p_j (log p_j + H)
          if (dlogits)
            for (int64_t j = 0; j < V; ++j) dlogits[i * V + j] = T(-scale * std::exp(lp[j]) * (lp[j] + h));
        }
      },
      min_rows(V));
  return sum_in_order(per_row.data(), rows);
}

template double nll_loss<float>(const float*, const int32_t*, int64_t, int64_t, float*, double);
template double nll_loss<double>(const double*, const int32_t*, int64_t, int64_t, double*, double);
template double entropy_loss<float>(const float*, int64_t, int64_t, float*, double);
template double entropy_loss<double>(const double*, int64_t, int64_t, double*, double);

}  // namespace wattmoe::ops
