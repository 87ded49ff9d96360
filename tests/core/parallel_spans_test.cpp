// span_for_each visits every element of the spans exactly once with its flat position, none outside them; span_sum
// is bitwise the same on pools of 1, 3 and 8 threads; empty spans and no spans are fine.
#include <gtest/gtest.h>

#include <cstring>

#include "core/parallel_spans.h"
#include "core/rng.h"

namespace wattmoe {
namespace {

Spans test_spans() {  // odd sizes, empty spans, gaps, one span larger than a sum piece
  return {{3, 3}, {5, 9}, {20, 20 + 3 * kSpanSumPiece + 7}, {200000, 200000}, {200001, 200050}, {300000, 300001}};
}

TEST(ParallelSpans, ForEachVisitsEachElementOnceWithItsFlatPosition) {
  const Spans spans = test_spans();
  std::vector<int> hits(300002, 0);
  std::vector<int64_t> flat_of(hits.size(), -1);
  for (int threads : {1, 3, 8}) {
    ThreadPool pool(threads);
    PoolScope scope(pool);
    std::fill(hits.begin(), hits.end(), 0);
    span_for_each(spans, [&](int64_t b, int64_t e, int64_t flat) {
      for (int64_t i = b; i < e; ++i) ++hits[size_t(i)], flat_of[size_t(i)] = flat + (i - b);
    }, /*min_chunk=*/1000);
    int64_t flat = 0;
    for (size_t i = 0; i < hits.size(); ++i) {
      bool inside = false;
      for (auto [b, e] : spans) inside = inside || (int64_t(i) >= b && int64_t(i) < e);
      ASSERT_EQ(hits[i], inside ? 1 : 0) << "element " << i << " on " << threads << " threads";
      if (inside) EXPECT_EQ(flat_of[i], flat++) << "element " << i;
    }
  }
}

TEST(ParallelSpans, SumIsBitwiseTheSameOnAnyThreadCount) {
  const Spans spans = test_spans();
  std::vector<float> x(300002);
  Rng rng(7);
  for (float& v : x) v = float(rng.normal());
  auto squares = [&](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += double(x[size_t(i)]) * x[size_t(i)];
    return s;
  };
  double first = 0;
  for (int threads : {1, 3, 8}) {
    ThreadPool pool(threads);
    PoolScope scope(pool);
    const double s = span_sum(spans, squares);
    if (threads == 1) first = s;
    EXPECT_EQ(std::memcmp(&s, &first, sizeof s), 0) << threads << " threads: " << s << " vs " << first;
  }
  double serial = 0;
  for (auto [b, e] : spans) serial += squares(b, e);
  EXPECT_NEAR(first, serial, 1e-9 * serial);
  EXPECT_EQ(span_sum(Spans{}, squares), 0.0);
  EXPECT_EQ(span_sum(Spans{{4, 4}}, squares), 0.0);
}

}  // namespace
}  // namespace wattmoe
