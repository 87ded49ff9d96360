// RoutingPolicy::select_traced: the selection equals select's, bit for bit, for every policy and knob; every selected
// expert's reason is "selected" or "k_min floor" and every other expert's a drop rule; and on hand-built rows each
// policy names the rule that dropped (or kept) each expert: k_max slots, mask, β, top-p mass, budget, cost price,
// the k_min floor.
#include "moe/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"

namespace wattmoe {
namespace {

using R = RouteReason;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Rows {
  int64_t n;
  int E;
  std::vector<float> logits, probs;
};

// Rows from probabilities (logits = log p, so `cost` ranks by the same order at λ = 0).
Rows from_probs(int64_t n, int E, std::vector<float> probs) {
  Rows r{n, E, std::vector<float>(probs.size()), std::move(probs)};
  for (size_t i = 0; i < r.probs.size(); ++i) r.logits[i] = std::log(r.probs[i]);
  return r;
}

Rows random_rows(uint64_t seed, int64_t n, int E) {
  Rng rng(seed);
  std::vector<float> p(size_t(n * E));
  for (int64_t t = 0; t < n; ++t) {
    double s = 0;
    for (int e = 0; e < E; ++e) s += p[size_t(t * E + e)] = float(std::exp(1.5 * rng.normal()));
    for (int e = 0; e < E; ++e) p[size_t(t * E + e)] = float(p[size_t(t * E + e)] / s);
  }
  return from_probs(n, E, std::move(p));
}

ExpertCosts flat_costs(int E, float fixed, float per_token) {
  return ExpertCosts{std::vector<float>(size_t(E), fixed), std::vector<float>(size_t(E), per_token)};
}

struct Traced {
  Routing r;
  RoutingTrace trace;
};

Traced traced(const std::string& policy, const Rows& b, int model_k, const ExpertCosts& c, const PolicyKnobs& kn) {
  Traced out;
  make_policy(policy)->select_traced(b.logits.data(), b.probs.data(), b.n, b.E, model_k, c, kn, out.r, out.trace);
  return out;
}

std::vector<R> reasons(const Traced& t, int64_t token) {
  return {t.trace.reason.begin() + token * t.trace.experts, t.trace.reason.begin() + (token + 1) * t.trace.experts};
}

bool selected(const Routing& r, int64_t t, int e) {
  for (int s = 0; s < r.k; ++s)
    if (r.expert[size_t(t * r.k + s)] == e) return true;
  return false;
}

TEST(PolicyTrace, SameSelectionAndConsistentReasonsForEveryPolicy) {
  const int E = 8, model_k = 2;
  const Rows b = random_rows(11, 64, E);
  const ExpertCosts c = flat_costs(E, 1.f, 0.05f);
  std::vector<PolicyKnobs> knobs(6);
  knobs[1].k_max = 4, knobs[1].k_min = 2, knobs[1].p = 0.6f, knobs[1].beta = 0.3f;
  knobs[2].mask = {false, true, false, false, true, false, false, false};
  knobs[3].lambda = 2.f, knobs[3].reuse_min_tokens = 4;
  knobs[4].budget_j = 12.0, knobs[4].k_max = 3;
  knobs[5].k_max = 1;
  for (const std::string& p : policy_names())
    for (const PolicyKnobs& kn : knobs) {
      Routing plain;
      make_policy(p)->select(b.logits.data(), b.probs.data(), b.n, E, model_k, c, kn, plain);
      const Traced t = traced(p, b, model_k, c, kn);
      ASSERT_EQ(t.r.expert, plain.expert) << p;
      ASSERT_EQ(t.r.counts, plain.counts) << p;
      ASSERT_EQ(t.trace.tokens, b.n);
      ASSERT_EQ(t.trace.experts, E);
      for (int64_t tok = 0; tok < b.n; ++tok)
        for (int e = 0; e < E; ++e) {
          const R why = t.trace.at(tok, e);
          EXPECT_EQ(selected(t.r, tok, e), why == R::kSelected || why == R::kFloor)
              << p << " token " << tok << " expert " << e << ": " << route_reason_name(why);
          if (!kn.mask.empty() && kn.mask[size_t(e)]) {
            EXPECT_EQ(why, R::kMask);
          }
        }
    }
}

// One token, 4 experts, probabilities 0.5, 0.3, 0.15, 0.05 (experts 0..3).
const Rows kRow = from_probs(1, 4, {0.5f, 0.3f, 0.15f, 0.05f});

TEST(PolicyTrace, TopKNamesTheSlotLimitAndTheMask) {
  PolicyKnobs kn;
  kn.mask = {false, true, false, false};
  const Traced t = traced("topk", kRow, 2, {}, kn);
  EXPECT_EQ(reasons(t, 0), (std::vector<R>{R::kSelected, R::kMask, R::kSelected, R::kSlots}));
  const Traced m = traced("mask", kRow, 2, {}, kn);
  EXPECT_EQ(reasons(m, 0), reasons(t, 0));
}

TEST(PolicyTrace, SkipNamesBetaAndTheFloor) {
  PolicyKnobs kn;
  kn.beta = 0.7f;  // threshold 0.35: expert 1 (0.3) is below it
  kn.k_max = 3;
  EXPECT_EQ(reasons(traced("skip", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kBeta, R::kBeta, R::kSlots}));
  kn.k_min = 2;  // the floor keeps expert 1 although β would drop it; expert 2 still goes
  EXPECT_EQ(reasons(traced("skip", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kFloor, R::kBeta, R::kSlots}));
  kn.beta = 0.f;  // no threshold: top-K, the rest outside the slots
  EXPECT_EQ(reasons(traced("skip", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kSelected, R::kSelected, R::kSlots}));
}

TEST(PolicyTrace, TopPNamesTheMassAndTheFloor) {
  PolicyKnobs kn;
  kn.p = 0.75f;  // 0.5 + 0.3 reaches it
  kn.k_max = 4;
  EXPECT_EQ(reasons(traced("top_p", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kSelected, R::kTopP, R::kTopP}));
  kn.p = 0.4f;
  kn.k_min = 3;  // the mass is reached by expert 0 alone; the floor keeps 1 and 2
  EXPECT_EQ(reasons(traced("top_p", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kFloor, R::kFloor, R::kTopP}));
  kn = PolicyKnobs{};
  kn.p = 1.f;  // never reached within K = 2: the slots limit it
  EXPECT_EQ(reasons(traced("top_p", kRow, 2, {}, kn), 0),
            (std::vector<R>{R::kSelected, R::kSelected, R::kSlots, R::kSlots}));
}

TEST(PolicyTrace, BudgetNamesTheBudgetAndTheFloor) {
  PolicyKnobs kn;
  kn.budget_j = 0;  // nothing beyond the floor fits
  const ExpertCosts c = flat_costs(4, 1.f, 0.1f);
  EXPECT_EQ(reasons(traced("budget", kRow, 2, c, kn), 0),
            (std::vector<R>{R::kFloor, R::kBudget, R::kSlots, R::kSlots}));
  kn.budget_j = kInf;
  EXPECT_EQ(reasons(traced("budget", kRow, 2, c, kn), 0),
            (std::vector<R>{R::kFloor, R::kSelected, R::kSlots, R::kSlots}));
}

TEST(PolicyTrace, CostNamesThePrice) {
  PolicyKnobs kn;
  kn.lambda = 50.f;  // expert 1 costs far more than the others: ranked out of the top-2 by its price
  ExpertCosts c = flat_costs(4, 0.f, 0.1f);
  c.per_token[1] = 10.f;
  EXPECT_EQ(reasons(traced("cost", kRow, 2, c, kn), 0),
            (std::vector<R>{R::kSelected, R::kCost, R::kSelected, R::kSlots}));
  kn.lambda = 0.f;  // λ = 0 is topk: no price, no cost reason
  EXPECT_EQ(reasons(traced("cost", kRow, 2, c, kn), 0),
            (std::vector<R>{R::kSelected, R::kSelected, R::kSlots, R::kSlots}));
}

TEST(PolicyTrace, ReasonNames) {
  EXPECT_STREQ(route_reason_name(R::kSelected), "selected");
  EXPECT_STREQ(route_reason_name(R::kFloor), "k_min floor");
  EXPECT_STREQ(route_reason_name(R::kMask), "mask");
  EXPECT_STREQ(route_reason_name(R::kSlots), "k_max");
  EXPECT_STREQ(route_reason_name(R::kBeta), "beta");
  EXPECT_STREQ(route_reason_name(R::kTopP), "top_p");
  EXPECT_STREQ(route_reason_name(R::kBudget), "budget");
  EXPECT_STREQ(route_reason_name(R::kCost), "cost");
}

}  // namespace
}  // namespace wattmoe
