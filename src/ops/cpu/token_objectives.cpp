#include "ops/token_objectives.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"

namespace wattmoe {

namespace {

// log Σ_j exp(x_j) of one row in double: the row's max, then the shifted exponentials summed in column order.
template <class T>
double row_logsumexp(const T* x, int64_t V) {
  double mx = double(*std::max_element(x, x + V)), sum = 0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(double(x[j]) - mx);
  return mx + std::log(sum);
}

// log-softmax of one row into lp (double); returns the row's entropy.
template <class T>
double row_log_softmax(const T* x, int64_t V, std::vector<double>& lp) {
  lp.resize(size_t(V));
  const double lse = row_logsumexp(x, V);
  double h = 0;
  for (int64_t j = 0; j < V; ++j) {
    lp[size_t(j)] = double(x[j]) - lse;
    h -= std::exp(lp[size_t(j)]) * lp[size_t(j)];
  }
  return h;
}

// Rows per task of the pool: at least 8,192 logits a task (as ops/cpu/loss.cpp's losses).
int64_t min_rows(int64_t V) { return rows_per_chunk(V, int64_t(1) << 13); }

// Every row's entropy (row_log_softmax's), rows in parallel: each value computed as on one thread.
template <class T>
std::vector<double> row_entropies(const T* logits, int64_t rows, int64_t V) {
  std::vector<double> h(static_cast<size_t>(rows));
  default_pool().parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        std::vector<double> lp;
        for (int64_t i = b; i < e; ++i) h[size_t(i)] = row_log_softmax(logits + i * V, V, lp);
      },
      min_rows(V));
  return h;
}

}  // namespace

double default_entropy_gate(int64_t V) { return 0.4 * std::log(double(V)); }

template <class T>
double next_token_nll(const T* logits, const int32_t* targets, int64_t rows, int64_t V, double weight, T* dlogits) {
  int64_t scored = 0;
  for (int64_t i = 0; i < rows; ++i) {
    WATTMOE_CHECK(targets[i] < V, "target {} >= vocab {}", targets[i], V);
    scored += targets[i] >= 0 ? 1 : 0;
  }
  if (scored == 0) return 0;
  const double scale = weight / double(scored);
  // Rows in parallel (each writes only its own dlogits row and log-probability); the total is summed in row order
  // afterwards, so the value and the gradient are the same bits on any number of threads (as every objective here).
  std::vector<double> lp_target(static_cast<size_t>(rows), 0.0);
  default_pool().parallel_for(
      rows,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int32_t y = targets[i];
          if (y < 0) continue;
          const T* x = logits + i * V;
          const double lse = row_logsumexp(x, V);
          lp_target[size_t(i)] = double(x[y]) - lse;
          if (!dlogits) continue;
          T* d = dlogits + i * V;
          for (int64_t j = 0; j < V; ++j) d[j] += T(scale * std::exp(double(x[j]) - lse));
          d[y] -= T(scale);
        }
      },
      min_rows(V));
  double total = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (targets[i] >= 0) total -= lp_target[size_t(i)];
  return total / double(scored);
}

template <class T>
double mean_entropy(const T* logits, int64_t rows, int64_t V) {
  if (rows == 0) return 0;
  const std::vector<double> h = row_entropies(logits, rows, V);
  double total = 0;
  for (double x : h) total += x;
  return total / double(rows);
}

template <class T>
std::vector<double> gate_weights(const T* logits, int64_t rows, int64_t V, double gate, int64_t* kept) {
  WATTMOE_REQUIRE(gate > 0 && std::isfinite(gate), "entropy_gate must be a finite number of nats > 0, got {}", gate);
  // w_i ∝ exp(gate − H_i) normalised to sum 1, i.e. ∝ exp(H_min − H_i): computed from the smallest kept entropy so a
  // huge gate (no gating) cannot overflow.
  std::vector<double> w(static_cast<size_t>(rows), 0.0);
  const std::vector<double> h = row_entropies(logits, rows, V);
  double hmin = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < rows; ++i)
    if (h[size_t(i)] <= gate) hmin = std::min(hmin, h[size_t(i)]);
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (h[size_t(i)] > gate) continue;
    w[size_t(i)] = std::exp(hmin - h[size_t(i)]);
    sum += w[size_t(i)];
    ++n;
  }
  if (sum > 0)
    for (double& x : w) x /= sum;
  if (kept) *kept = n;
  return w;
}

template <class T>
double weighted_entropy(const T* logits, int64_t rows, int64_t V, const std::vector<double>& w, double weight,
                        T* dlogits) {
  WATTMOE_CHECK(int64_t(w.size()) == rows);
  std::vector<double> h(static_cast<size_t>(rows), 0.0);
  default_pool().parallel_for(  // rows apart; the total in row order below
      rows,
      [&](int64_t b, int64_t e) {
        std::vector<double> lp;
        for (int64_t i = b; i < e; ++i) {
          const double wi = w[size_t(i)];
          if (wi == 0) continue;
          h[size_t(i)] = row_log_softmax(logits + i * V, V, lp);
          if (!dlogits) continue;
          // ∂H/∂x_j = −p_j (log p_j + H)
          T* d = dlogits + i * V;
          for (int64_t j = 0; j < V; ++j)
            d[j] += T(-weight * wi * std::exp(lp[size_t(j)]) * (lp[size_t(j)] + h[size_t(i)]));
        }
      },
      min_rows(V));
  double total = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (w[size_t(i)] != 0) total += w[size_t(i)] * h[size_t(i)];
  return total;
}

template <class T>
double gated_entropy(const T* logits, int64_t rows, int64_t V, double gate, double weight, T* dlogits,
                     double* kept_fraction) {
  int64_t kept = 0;
  const std::vector<double> w = gate_weights(logits, rows, V, gate, &kept);
  if (kept_fraction) *kept_fraction = rows ? double(kept) / double(rows) : 0;
  return kept ? weighted_entropy(logits, rows, V, w, weight, dlogits) : 0.0;
}

#define WATTMOE_INSTANTIATE(T)                                                                                   \
  template double next_token_nll<T>(const T*, const int32_t*, int64_t, int64_t, double, T*);                   \
  template double mean_entropy<T>(const T*, int64_t, int64_t);                                                 \
  template std::vector<double> gate_weights<T>(const T*, int64_t, int64_t, double, int64_t*);                  \
  template double weighted_entropy<T>(const T*, int64_t, int64_t, const std::vector<double>&, double, T*);     \
  template double gated_entropy<T>(const T*, int64_t, int64_t, double, double, T*, double*);
WATTMOE_INSTANTIATE(float)
WATTMOE_INSTANTIATE(double)
#undef WATTMOE_INSTANTIATE

}  // namespace wattmoe
