// Elementwise work and sums over a set of disjoint index spans [begin, end) (a model's trainable ranges), split over
// default_pool() as one flat index space, so that many small spans cost one parallel region, not one each.
//
// span_for_each: fn(begin, end, flat) on disjoint pieces of the spans, in parallel, flat = the piece's position in the
// spans' concatenation (elementwise work only: pieces depend on the thread count). span_sum: Σ fn(begin, end) over fixed pieces of kSpanSumPiece flat elements added in order, so
// the sum is bitwise the same on 1 or N threads.
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/thread_pool.h"

namespace wattmoe {

using Spans = std::vector<std::pair<int64_t, int64_t>>;  // [begin, end) each, disjoint

inline constexpr int64_t kSpanSumPiece = int64_t(1) << 15;

namespace detail {
// Calls fn(begin, end, flat_begin) for the spans' elements at flat positions [lo, hi) (flat = position in the
// concatenation).
template <class Fn>
void spans_piece(const Spans& spans, const std::vector<int64_t>& starts, int64_t lo, int64_t hi, Fn&& fn) {
  size_t s = size_t(std::upper_bound(starts.begin(), starts.end(), lo) - starts.begin()) - 1;
  for (int64_t at = lo; at < hi; ++s) {
    const int64_t off = at - starts[s], len = spans[s].second - spans[s].first;
    const int64_t take = std::min(len - off, hi - at);
    if (take > 0) fn(spans[s].first + off, spans[s].first + off + take, at);
    at += std::max<int64_t>(take, 0);
  }
}
inline std::vector<int64_t> span_starts(const Spans& spans) {
  std::vector<int64_t> starts(spans.size() + 1, 0);
  for (size_t i = 0; i < spans.size(); ++i) starts[i + 1] = starts[i] + (spans[i].second - spans[i].first);
  return starts;
}
}  // namespace detail

template <class Fn>
void span_for_each(const Spans& spans, Fn&& fn, int64_t min_chunk = kSpanSumPiece) {
  const std::vector<int64_t> starts = detail::span_starts(spans);
  default_pool().parallel_for(
      starts.back(), [&](int64_t lo, int64_t hi) { detail::spans_piece(spans, starts, lo, hi, fn); }, min_chunk);
}

template <class Fn>
double span_sum(const Spans& spans, Fn&& fn) {
  const std::vector<int64_t> starts = detail::span_starts(spans);
  const int64_t n = starts.back(), pieces = (n + kSpanSumPiece - 1) / kSpanSumPiece;
  std::vector<double> part(size_t(pieces), 0.0);
  default_pool().run_tasks(pieces, [&](int64_t p) {
    const int64_t lo = p * kSpanSumPiece, hi = std::min(n, lo + kSpanSumPiece);
    detail::spans_piece(spans, starts, lo, hi, [&](int64_t b, int64_t e, int64_t) { part[size_t(p)] += fn(b, e); });
  });
  double sum = 0;
  for (double v : part) sum += v;
  return sum;
}

}  // namespace wattmoe
