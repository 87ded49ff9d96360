// Effort → knobs: every family is exactly the model's top-k at u = 0 (checked on the routing the policies
// produce), every knob and the routing's cost move monotonically with u, topk's discrete k has hysteresis,
// bad ranges are clear Errors.
#include "control/knob_map.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "control_test_util.h"
#include "core/rng.h"

namespace wattmoe {
namespace {

using control_test::error_of;

struct Batch {
  int64_t n;
  int E;
  std::vector<float> logits, probs;
};

Batch random_batch(uint64_t seed, int64_t n, int E) {
  Rng rng(seed);
  Batch b{n, E, std::vector<float>(size_t(n * E)), std::vector<float>(size_t(n * E))};
  for (float& x : b.logits) x = float(1.5 * rng.normal());
  for (int64_t t = 0; t < n; ++t) {
    double m = -1e30, s = 0;
    for (int e = 0; e < E; ++e) m = std::max(m, double(b.logits[size_t(t * E + e)]));
    for (int e = 0; e < E; ++e) s += std::exp(double(b.logits[size_t(t * E + e)]) - m);
    for (int e = 0; e < E; ++e)
      b.probs[size_t(t * E + e)] = float(std::exp(double(b.logits[size_t(t * E + e)]) - m) / s);
  }
  return b;
}

ExpertCosts random_costs(uint64_t seed, int E) {
  Rng rng(seed ^ 0xc0);
  ExpertCosts c;
  for (int e = 0; e < E; ++e) {
    c.fixed.push_back(float(0.2 + 3.0 * rng.uniform()));
    c.per_token.push_back(float(0.005 + 0.2 * rng.uniform()));
  }
  return c;
}

KnobMapConfig config_for(const std::string& policy, int E, int k, const ExpertCosts& costs, int64_t n) {
  KnobMapConfig c;
  c.policy = policy;
  c.num_experts = E;
  c.model_k = k;
  const BudgetRange r = estimate_budget_range(costs, n, k);
  c.budget_full_j = r.full_j;
  c.budget_floor_j = r.floor_j;
  return c;
}

Routing select(const std::string& policy, const Batch& b, int k, const ExpertCosts& costs,
               const PolicyKnobs& kn) {
  Routing r;
  make_policy(policy)->select(b.logits.data(), b.probs.data(), b.n, b.E, k, costs, kn, r);
  return r;
}

TEST(KnobMap, EveryFamilyIsExactlyTheModelsTopkAtZeroEffort) {
  for (auto [E, k] : {std::pair{8, 2}, std::pair{64, 8}, std::pair{4, 1}, std::pair{6, 6}}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      const Batch b = random_batch(seed * 31 + uint64_t(E), 37, E);
      const ExpertCosts costs = random_costs(seed, E);
      const Routing ref = select("topk", b, k, costs, PolicyKnobs{});
      for (const std::string& policy : controllable_policies()) {
        SCOPED_TRACE(policy + " E=" + std::to_string(E) + " k=" + std::to_string(k));
        const KnobMapConfig c = config_for(policy, E, k, costs, b.n);
        const Routing r = select(policy, b, k, costs, knobs_for_effort(c, 0.0));
        EXPECT_EQ(r.k, ref.k);
        EXPECT_EQ(r.expert, ref.expert);
        KnobMapper m(c);
        EXPECT_EQ(select(policy, b, k, costs, m.map(0.0)).expert, ref.expert);
      }
    }
  }
}

TEST(KnobMap, KnobsAndRoutingCostAreMonotoneInEffort) {
  const int E = 8, k = 4;
  const Batch b = random_batch(7, 64, E);
  const ExpertCosts costs = random_costs(7, E);
  const std::vector<double> share = per_token_cost(costs, b.n);
  for (const std::string& policy : controllable_policies()) {
    SCOPED_TRACE(policy);
    const KnobMapConfig c = config_for(policy, E, k, costs, b.n);
    PolicyKnobs prev = knobs_for_effort(c, 0.0);
    double prev_experts = 1e30, prev_share = 1e30, prev_energy = 1e30;
    for (int i = 0; i <= 100; ++i) {
      const double u = i / 100.0;
      const PolicyKnobs kn = knobs_for_effort(c, u);
      validate_knobs(kn, E, k);
      EXPECT_GE(kn.lambda, prev.lambda);
      EXPECT_LE(kn.p, prev.p);
      EXPECT_GE(kn.beta, prev.beta);
      EXPECT_LE(resolved_k_max(kn, k), resolved_k_max(prev, k));
      EXPECT_LE(kn.k_min, prev.k_min);
      EXPECT_LE(kn.budget_j, prev.budget_j);
      const Routing r = select(policy, b, k, costs, kn);
      // top_p/skip/topk: experts per token never grow; cost (k fixed): the price share of the selection never
      // grows; budget: the step energy never grows (its greedy may take more, cheaper pairs as the budget
      // shrinks).
      double sel_share = 0;
      for (int64_t t = 0; t < r.tokens; ++t)
        for (int s = 0; s < r.k; ++s)
          if (int e = r.expert[size_t(t * r.k + s)]; e >= 0) sel_share += share[size_t(e)];
      const double energy = routing_energy(r, costs);
      if (policy == "top_p" || policy == "skip" || policy == "topk") {
        EXPECT_LE(r.mean_experts_per_token(), prev_experts + 1e-12);
      }
      if (policy == "cost") {
        EXPECT_LE(sel_share, prev_share * (1 + 1e-9));
      }
      if (policy == "budget") {
        EXPECT_LE(energy, prev_energy * (1 + 1e-9));
      }
      prev_experts = r.mean_experts_per_token();
      prev_share = sel_share;
      prev_energy = energy;
      prev = kn;
    }
    // The cheapest end does reduce something.
    const Routing full = select(policy, b, k, costs, knobs_for_effort(c, 0.0));
    const Routing cheap = select(policy, b, k, costs, knobs_for_effort(c, 1.0));
    EXPECT_LT(routing_energy(cheap, costs), routing_energy(full, costs));
  }
}

TEST(KnobMap, EndPointsOfEachFamily) {
  KnobMapConfig c;
  c.num_experts = 8;
  c.model_k = 4;
  c.lambda_max = 3;
  c.p_min = 0.6;
  c.beta_max = 0.4;
  c.budget_full_j = 10;
  c.budget_floor_j = 2;
  c.policy = "cost";
  EXPECT_FLOAT_EQ(knobs_for_effort(c, 1).lambda, 3.f);
  EXPECT_FLOAT_EQ(knobs_for_effort(c, 0.5).lambda, 1.5f);
  c.policy = "top_p";
  EXPECT_FLOAT_EQ(knobs_for_effort(c, 1).p, 0.6f);
  EXPECT_EQ(knobs_for_effort(c, 1).k_min, 1);
  EXPECT_EQ(knobs_for_effort(c, 0).k_min, 4);
  c.policy = "skip";
  EXPECT_FLOAT_EQ(knobs_for_effort(c, 1).beta, 0.4f);
  c.policy = "topk";
  EXPECT_EQ(knobs_for_effort(c, 0).k_max, 4);
  EXPECT_EQ(knobs_for_effort(c, 1).k_max, 1);
  c.policy = "budget";
  EXPECT_TRUE(std::isinf(knobs_for_effort(c, 0).budget_j));
  EXPECT_DOUBLE_EQ(knobs_for_effort(c, 1).budget_j, 2.0);
  EXPECT_DOUBLE_EQ(knobs_for_effort(c, 0.25).budget_j, 8.0);
}

TEST(KnobMap, TopkQuantizerHasHysteresis) {
  TopkQuantizer q(8, 0.25);
  EXPECT_EQ(q.update(0.0), 8);
  // k_c = 8 − 7u; the plain rounding point between 8 and 7 is k_c = 7.5 (u = 1/14). Down needs k_c < 7.25.
  const double u_round = 0.5 / 7;
  for (double d : {-0.02, 0.02, -0.02, 0.02, 0.03}) EXPECT_EQ(q.update(u_round + d), 8) << d;
  EXPECT_EQ(q.update(topk_effort_at(8, 7.24)), 7);
  // Back up needs k_c > 7.75, not just past 7.5.
  EXPECT_EQ(q.update(topk_effort_at(8, 7.6)), 7);
  EXPECT_EQ(q.update(topk_effort_at(8, 7.76)), 8);
  // Oscillating around any rounding point by less than the hysteresis never flips k.
  q.reset(5);
  const double u5 = topk_effort_at(8, 4.5);
  int flips = 0, last = q.update(u5);
  for (int i = 0; i < 50; ++i) {
    const int now = q.update(u5 + (i % 2 ? 0.03 : -0.03));
    flips += now != last;
    last = now;
  }
  EXPECT_LE(flips, 1);
  // hold_effort keeps k; the ends are exact from any state.
  q.reset(3);
  EXPECT_EQ(q.update(std::min(1.0, q.hold_effort() + 1e-9)), 3);
  EXPECT_EQ(q.update(1.0), 1);
  EXPECT_EQ(q.update(0.0), 8);  // jumps several levels at once
  TopkQuantizer one(1, 0.2);
  EXPECT_EQ(one.update(0.3), 1);
  EXPECT_EQ(one.hold_effort(), 0.0);
}

TEST(KnobMap, BudgetRangeEstimate) {
  ExpertCosts c{std::vector<float>(8, 1.0f), std::vector<float>(8, 0.01f)};
  const BudgetRange one = estimate_budget_range(c, 1, 2);
  EXPECT_NEAR(one.full_j, 2 * 1.0 + 2 * 0.01, 1e-6);
  EXPECT_NEAR(one.floor_j, 1.0 + 0.01, 1e-6);
  const BudgetRange many = estimate_budget_range(c, 512, 2);
  EXPECT_NEAR(many.full_j, 8.0 + 0.01 * 1024, 1e-3);  // every expert touched
  EXPECT_GT(many.full_j, many.floor_j);
  EXPECT_NE(error_of([&] { estimate_budget_range(c, 0, 2); }).find("tokens"), std::string::npos);
  EXPECT_NE(error_of([&] { estimate_budget_range(c, 4, 9); }).find("model_k"), std::string::npos);
  ExpertCosts bad = c;
  bad.per_token[3] = -1;
  EXPECT_NE(error_of([&] { estimate_budget_range(bad, 4, 2); }).find("per_token[3]"), std::string::npos);
}

TEST(KnobMap, BadRangesAreClearErrors) {
  auto bad = [](auto edit) {
    KnobMapConfig c;
    c.budget_full_j = 2;
    c.budget_floor_j = 1;
    edit(c);
    return error_of([&] { KnobMapper m(c); });
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(bad([](KnobMapConfig& c) { c.policy = "greedy"; }).find("expected one of cost, top_p"),
            std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.policy = "mask"; }).find("ladder"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.num_experts = 0; }).find("num_experts"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.model_k = 9; }).find("model_k = 9"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.model_k = 0; }).find("model_k = 0"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.lambda_max = -1; }).find("lambda_max"), std::string::npos);
  EXPECT_NE(bad([nan](KnobMapConfig& c) { c.lambda_max = nan; }).find("lambda_max"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.p_min = 0; }).find("p_min"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.p_min = 1.5; }).find("p_min"), std::string::npos);
  EXPECT_NE(bad([nan](KnobMapConfig& c) { c.p_min = nan; }).find("p_min"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.beta_max = 1.2; }).find("beta_max"), std::string::npos);
  EXPECT_NE(bad([nan](KnobMapConfig& c) { c.beta_max = nan; }).find("beta_max"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) { c.k_hysteresis = 0.5; }).find("k_hysteresis"), std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) {
              c.policy = "budget";
              c.budget_full_j = 0;
            }).find("budget_full_j"),
            std::string::npos);
  EXPECT_NE(bad([nan](KnobMapConfig& c) {
              c.policy = "budget";
              c.budget_full_j = nan;
            }).find("budget_full_j"),
            std::string::npos);
  EXPECT_NE(bad([](KnobMapConfig& c) {
              c.policy = "budget";
              c.budget_floor_j = 3;
            }).find("budget_floor_j"),
            std::string::npos);
  EXPECT_NE(error_of([] { TopkQuantizer q(0, 0.1); }).find("model_k"), std::string::npos);
  EXPECT_NE(error_of([] { TopkQuantizer q(4, -0.1); }).find("hysteresis"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
