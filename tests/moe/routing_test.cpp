// Routing and dispatch, adversarial cases: ties in router scores (always to the lower expert index), an expert with
// zero tokens, all tokens on one expert, k = 1 and k = E, token counts that are not multiples of anything, unused
// (-1) slots; dispatch offsets/rows consistent and stable (ordered by token, then slot, within an expert).
#include <algorithm>
#include <numeric>

#include <gtest/gtest.h>

#include "core/rng.h"
#include "moe/dispatch.h"
#include "moe/routing.h"

namespace wattmoe {
namespace {

// Reference top-k: indices stably sorted by descending score (equal scores keep ascending index order).
template <class T>
std::vector<int32_t> ref_topk(const T* s, int E, int k) {
  std::vector<int32_t> idx(static_cast<size_t>(E));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [s](int32_t a, int32_t b) { return s[a] > s[b]; });
  idx.resize(size_t(k));
  return idx;
}

// Every structural invariant of a Routing and its Dispatch.
void check_dispatch(const Routing& r) {
  SCOPED_TRACE("tokens " + std::to_string(r.tokens) + " k " + std::to_string(r.k) + " E " + std::to_string(r.experts));
  ASSERT_EQ(int64_t(r.expert.size()), r.tokens * r.k);
  std::vector<int32_t> counts(size_t(r.experts), 0);
  int64_t used = 0;
  for (int32_t e : r.expert) {
    ASSERT_GE(e, -1);
    ASSERT_LT(e, r.experts);
    if (e >= 0) ++counts[size_t(e)], ++used;
  }
  EXPECT_EQ(r.counts, counts) << "counts disagree with the expert table";
  const Dispatch d = build_dispatch(r);
  ASSERT_EQ(d.offsets.size(), size_t(r.experts) + 1);
  EXPECT_EQ(d.offsets.front(), 0);
  EXPECT_EQ(d.offsets.back(), used);
  EXPECT_EQ(d.rows(), used);
  ASSERT_EQ(d.slot.size(), d.token.size());
  for (int e = 0; e < r.experts; ++e) {
    EXPECT_EQ(d.offsets[e + 1] - d.offsets[e], counts[size_t(e)]) << "expert " << e;
    for (int64_t row = d.offsets[e]; row < d.offsets[e + 1]; ++row) {
      const int32_t t = d.token[size_t(row)], s = d.slot[size_t(row)];
      ASSERT_TRUE(t >= 0 && t < r.tokens && s >= 0 && s < r.k) << "row " << row;
      EXPECT_EQ(r.expert[size_t(t) * r.k + s], e) << "row " << row << " is in expert " << e << "'s range";
      if (row > d.offsets[e]) {  // stable: strictly increasing (token, slot) within the expert
        const int32_t pt = d.token[size_t(row - 1)], ps = d.slot[size_t(row - 1)];
        EXPECT_TRUE(pt < t || (pt == t && ps < s)) << "rows " << row - 1 << ", " << row << " out of order";
      }
    }
  }
  // Each used (token, slot) pair appears exactly once.
  std::vector<int> seen(r.expert.size(), 0);
  for (int64_t row = 0; row < d.rows(); ++row) ++seen[size_t(d.token[size_t(row)]) * r.k + d.slot[size_t(row)]];
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], r.expert[i] >= 0 ? 1 : 0) << "pair " << i;
  // Pure function: the same routing gives the same dispatch.
  const Dispatch d2 = build_dispatch(r);
  EXPECT_EQ(d.offsets, d2.offsets);
  EXPECT_EQ(d.token, d2.token);
  EXPECT_EQ(d.slot, d2.slot);
}

TEST(Routing, TiesGoToTheLowerIndex) {
  // All equal: experts 0..k-1 in order, for every k.
  for (int E : {1, 2, 5, 8})
    for (int k = 1; k <= E; ++k) {
      std::vector<float> s(size_t(3 * E), 0.25f);
      Routing r;
      select_topk<float>(s.data(), 3, E, k, r);
      for (int t = 0; t < 3; ++t)
        for (int j = 0; j < k; ++j) EXPECT_EQ(r.expert[size_t(t * k + j)], j) << "E " << E << " k " << k;
      check_dispatch(r);
    }
  // A tie straddling the k boundary: {0.1, 0.3, 0.2, 0.3, 0.2}, k = 3 → 1, 3, 2 (2 beats 4).
  const std::vector<double> s{0.1, 0.3, 0.2, 0.3, 0.2};
  Routing r;
  select_topk<double>(s.data(), 1, 5, 3, r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 3, 2}));
  // k = E orders the whole row: ties keep index order.
  select_topk<double>(s.data(), 1, 5, 5, r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 3, 2, 4, 0}));
  // +0 and −0 compare equal: a tie, so the lower index wins.
  const std::vector<float> z{-0.0f, 0.0f, -1.0f};
  select_topk<float>(z.data(), 1, 3, 1, r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0}));
  const std::vector<float> z2{0.0f, -0.0f, -1.0f};
  select_topk<float>(z2.data(), 1, 3, 1, r);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0}));
}

TEST(Routing, MatchesStableSortOnQuantizedScores) {
  // Scores drawn from 4 levels: ties everywhere, at every position of the top-k. Token counts that are not
  // multiples of anything; k from 1 to E.
  Rng rng(17);
  for (int E : {2, 3, 7, 8})
    for (int k = 1; k <= E; ++k)
      for (int64_t n : {1, 7, 13, 97}) {
        std::vector<double> s(size_t(n * E));
        for (auto& x : s) x = double(rng.below(4)) * 0.125;
        Routing r;
        select_topk<double>(s.data(), n, E, k, r);
        ASSERT_EQ(r.tokens, n);
        ASSERT_EQ(r.k, k);
        ASSERT_EQ(r.experts, E);
        for (int64_t t = 0; t < n; ++t) {
          const std::vector<int32_t> want = ref_topk(&s[size_t(t * E)], E, k);
          const std::vector<int32_t> got(r.expert.begin() + t * k, r.expert.begin() + (t + 1) * k);
          ASSERT_EQ(got, want) << "E " << E << " k " << k << " token " << t;
        }
        int64_t total = std::accumulate(r.counts.begin(), r.counts.end(), int64_t(0));
        EXPECT_EQ(total, n * k);
        EXPECT_DOUBLE_EQ(r.mean_experts_per_token(), double(k));
        check_dispatch(r);
        // float gives the same selection on the same (exactly representable) scores.
        std::vector<float> sf(s.begin(), s.end());
        Routing rf;
        select_topk<float>(sf.data(), n, E, k, rf);
        EXPECT_EQ(rf.expert, r.expert);
      }
}

TEST(Routing, AllTokensOnOneExpertLeavesOthersEmpty) {
  const int E = 6;
  const int64_t n = 29;
  std::vector<float> s(size_t(n * E));
  Rng rng(3);
  for (auto& x : s) x = float(rng.uniform());
  for (int64_t t = 0; t < n; ++t) s[size_t(t * E + 4)] = 2.0f;  // expert 4 dominates every token
  Routing r;
  select_topk<float>(s.data(), n, E, 1, r);
  EXPECT_EQ(r.counts, (std::vector<int32_t>{0, 0, 0, 0, int32_t(n), 0}));
  EXPECT_EQ(r.distinct_experts(), 1);
  check_dispatch(r);
  const Dispatch d = build_dispatch(r);
  for (int e = 0; e < E; ++e) {
    if (e == 4) continue;
    EXPECT_EQ(d.offsets[e + 1], d.offsets[e]) << "expert " << e << " has no rows";
  }
  for (int64_t row = 0; row < n; ++row) EXPECT_EQ(d.token[size_t(row)], row);
}

TEST(Routing, UnusedSlots) {
  // A variable-k policy marks unused slots with -1: they are not counted and get no dispatch row.
  Routing r;
  r.reset(5, 3, 4);
  EXPECT_EQ(r.expert, std::vector<int32_t>(15, -1));
  EXPECT_EQ(r.counts, std::vector<int32_t>(4, 0));
  check_dispatch(r);  // nothing routed: zero rows, all offsets 0
  EXPECT_EQ(build_dispatch(r).offsets, std::vector<int64_t>(5, 0));
  EXPECT_EQ(r.mean_experts_per_token(), 0.0);
  EXPECT_EQ(r.distinct_experts(), 0);

  r.expert = {2, -1, 0,    // token 0: slots 0 and 2
              -1, -1, -1,  // token 1: no expert at all
              -1, 3, 2,    // token 2: unused first slot
              0, 2, -1,    // token 3
              3, -1, -1};  // token 4
  r.recount();
  EXPECT_EQ(r.counts, (std::vector<int32_t>{2, 0, 3, 2}));
  EXPECT_DOUBLE_EQ(r.mean_experts_per_token(), 7.0 / 5.0);
  EXPECT_EQ(r.distinct_experts(), 3);
  check_dispatch(r);
  const Dispatch d = build_dispatch(r);
  EXPECT_EQ(d.offsets, (std::vector<int64_t>{0, 2, 2, 5, 7}));
  EXPECT_EQ(d.token, (std::vector<int32_t>{0, 3, 0, 2, 3, 2, 4}));
  EXPECT_EQ(d.slot, (std::vector<int32_t>{2, 0, 0, 2, 1, 1, 0}));
  // The (token, slot) -> row maps the combine reads: in slot order, and each token's rows in row order (−1 first).
  EXPECT_EQ(slot_rows(d, r.tokens, r.k),
            (std::vector<int64_t>{2, -1, 0, -1, -1, -1, -1, 5, 3, 1, 4, -1, 6, -1, -1}));
  EXPECT_EQ(slot_rows_in_row_order(d, r.tokens, r.k),
            (std::vector<int64_t>{-1, 0, 2, -1, -1, -1, -1, 3, 5, -1, 1, 4, -1, -1, 6}));

  Routing empty;
  empty.reset(0, 2, 3);
  EXPECT_EQ(empty.mean_experts_per_token(), 0.0);
  check_dispatch(empty);
}

TEST(Routing, ZeroTokens) {
  Routing r;
  select_topk<float>(nullptr, 0, 4, 2, r);
  EXPECT_EQ(r.tokens, 0);
  EXPECT_TRUE(r.expert.empty());
  EXPECT_EQ(r.counts, std::vector<int32_t>(4, 0));
  check_dispatch(r);
}

// The rows of several forwards gathered (the CPU runner's forward_slots): a wider k pads the earlier rows with -1,
// counts add, and an empty Routing takes the first rows' expert count (a different count is a programming error:
// WATTMOE_CHECK).
TEST(Routing, AppendRowsPadsToTheWiderK) {
  Routing all, a, b;
  a.reset(2, 1, 4), a.expert = {3, 0}, a.recount();
  b.reset(1, 2, 4), b.expert = {1, -1}, b.recount();
  all.append_rows(a), all.append_rows(b), all.append_rows(a);
  EXPECT_EQ(all.tokens, 5);
  EXPECT_EQ(all.k, 2);
  EXPECT_EQ(all.expert, (std::vector<int32_t>{3, -1, 0, -1, 1, -1, 3, -1, 0, -1}));
  EXPECT_EQ(all.counts, (std::vector<int32_t>{2, 1, 0, 2}));
}

TEST(Dispatch, RandomRoutingsWithHolesAndRepeats) {
  // Random expert tables (including -1 and a token listing the same expert in two slots): all invariants hold.
  Rng rng(23);
  for (int trial = 0; trial < 50; ++trial) {
    Routing r;
    const int E = 1 + int(rng.below(9)), k = 1 + int(rng.below(4));
    const int64_t n = int64_t(rng.below(40));
    r.reset(n, k, E);
    for (auto& e : r.expert) e = int32_t(rng.below(uint64_t(E) + 1)) - 1;
    r.recount();
    check_dispatch(r);
  }
}

}  // namespace
}  // namespace wattmoe
