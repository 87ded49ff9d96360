// Routing policies: invariants of the Routing they produce, the exact limits where a policy must equal topk, the
// direction each knob moves cost and experts per token, budgets, masks, and knob validation.
#include "moe/policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "model/transformer.h"
#include "moe/policy_select.h"

namespace wattmoe {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Batch {
  int64_t n = 0;
  int E = 0;
  std::vector<float> logits, probs;
};

void softmax_rows(Batch& b) {
  b.probs.resize(b.logits.size());
  for (int64_t t = 0; t < b.n; ++t) {
    const float* l = &b.logits[size_t(t * b.E)];
    double m = -kInf, s = 0;
    for (int e = 0; e < b.E; ++e) m = std::max(m, double(l[e]));
    for (int e = 0; e < b.E; ++e) s += std::exp(double(l[e]) - m);
    for (int e = 0; e < b.E; ++e) b.probs[size_t(t * b.E + e)] = float(std::exp(double(l[e]) - m) / s);
  }
}

Batch random_batch(uint64_t seed, int64_t n, int E, double scale = 1.5) {
  Rng rng(seed);
  Batch b{n, E, std::vector<float>(size_t(n * E)), {}};
  for (float& x : b.logits) x = float(scale * rng.normal());
  softmax_rows(b);
  return b;
}

Batch from_logits(int64_t n, int E, std::vector<float> logits) {
  Batch b{n, E, std::move(logits), {}};
  softmax_rows(b);
  return b;
}

ExpertCosts random_costs(uint64_t seed, int E) {
  Rng rng(seed ^ 0xc057);
  ExpertCosts c;
  for (int e = 0; e < E; ++e) {
    c.fixed.push_back(float(0.2 + 3.0 * rng.uniform()));
    c.per_token.push_back(float(0.005 + 0.2 * rng.uniform()));
  }
  return c;
}

Routing run(const std::string& policy, const Batch& b, int model_k, const ExpertCosts& c, const PolicyKnobs& kn) {
  Routing r;
  make_policy(policy)->select(b.logits.data(), b.probs.data(), b.n, b.E, model_k, c, kn, r);
  return r;
}

Routing reference_topk(const Batch& b, int k) {
  Routing r;
  select_topk<float>(b.probs.data(), b.n, b.E, k, r);
  return r;
}

int experts_of(const Routing& r, int64_t t) {
  int m = 0;
  for (int s = 0; s < r.k; ++s) m += r.expert[size_t(t * r.k + s)] >= 0;
  return m;
}

// Shape, valid distinct ids, unused slots only at the end, at least one expert per token, counts consistent,
// slots in descending probability (all policies but `cost` with λ > 0 order by probability).
void expect_well_formed(const Routing& r, const Batch& b, int K, const std::vector<bool>& mask = {},
                        bool prob_order = true) {
  ASSERT_EQ(r.tokens, b.n);
  ASSERT_EQ(r.k, K);
  ASSERT_EQ(r.experts, b.E);
  ASSERT_EQ(int64_t(r.expert.size()), b.n * K);
  std::vector<int32_t> counts(size_t(b.E), 0);
  for (int64_t t = 0; t < b.n; ++t) {
    std::set<int32_t> seen;
    bool ended = false;
    for (int s = 0; s < K; ++s) {
      const int32_t e = r.expert[size_t(t * K + s)];
      if (e < 0) {
        EXPECT_EQ(e, -1);
        ended = true;
        continue;
      }
      EXPECT_FALSE(ended) << "token " << t << ": expert after an unused slot";
      ASSERT_LT(e, b.E);
      EXPECT_TRUE(seen.insert(e).second) << "token " << t << ": expert " << e << " twice";
      if (!mask.empty()) {
        EXPECT_FALSE(mask[size_t(e)]) << "masked expert " << e << " selected";
      }
      if (prob_order && s > 0) {
        const int32_t prev = r.expert[size_t(t * K + s - 1)];
        const float pp = b.probs[size_t(t * b.E + prev)], pe = b.probs[size_t(t * b.E + e)];
        EXPECT_TRUE(pp > pe || (pp == pe && prev < e)) << "token " << t << " slot " << s;
      }
      ++counts[size_t(e)];
    }
    EXPECT_GE(seen.size(), 1u) << "token " << t << " has no expert";
  }
  EXPECT_EQ(counts, r.counts);
}

// Copy of a topk routing keeping only each token's first m slots.
Routing truncated(Routing r, int m) {
  for (int64_t t = 0; t < r.tokens; ++t)
    for (int s = m; s < r.k; ++s) r.expert[size_t(t * r.k + s)] = -1;
  r.recount();
  return r;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// --------------------------------------------------------------------------------------------------------------------

TEST(PolicyTest, FactoryNamesAndUnknownName) {
  for (const std::string& name : policy_names()) EXPECT_EQ(make_policy(name)->name(), name);
  const std::string msg = error_of([] { make_policy("greedy"); });
  EXPECT_NE(msg.find("greedy"), std::string::npos) << msg;
  for (const char* n : {"topk", "cost", "top_p", "skip", "budget", "mask"})
    EXPECT_NE(msg.find(n), std::string::npos) << msg;
}

TEST(PolicyTest, AdversarialCasesEveryPolicy) {
  struct Case {
    const char* what;
    Batch b;
    int k;
  };
  std::vector<Case> cases;
  cases.push_back({"random n=1 k=2", random_batch(1, 1, 8), 2});
  cases.push_back({"random n=37 E=5 k=3", random_batch(2, 37, 5), 3});
  cases.push_back({"k=1", random_batch(3, 13, 8), 1});
  cases.push_back({"k=E", random_batch(4, 11, 6), 6});
  cases.push_back({"E=1", random_batch(5, 3, 1), 1});
  cases.push_back({"n=0", random_batch(6, 0, 4), 2});
  {  // expert 0 gets no token, every token prefers expert 3
    Batch b = random_batch(7, 29, 8, 0.5);
    for (int64_t t = 0; t < b.n; ++t) b.logits[size_t(t * 8 + 0)] = -30.f, b.logits[size_t(t * 8 + 3)] = 8.f;
    softmax_rows(b);
    cases.push_back({"all on one expert, one expert idle, k=1", b, 1});
    cases.push_back({"all on one expert, one expert idle, k=2", b, 2});
  }
  {  // exact ties everywhere
    Batch b = from_logits(5, 6, std::vector<float>(30, 0.25f));
    cases.push_back({"all logits tied", b, 3});
  }
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.what);
    const ExpertCosts c = random_costs(11, cs.b.E);
    const Routing ref = reference_topk(cs.b, cs.k);
    for (const std::string& name : policy_names()) {
      SCOPED_TRACE(name);
      PolicyKnobs kn;  // defaults: λ = 0, β = 0, infinite budget, no mask → topk
      if (name == "top_p") kn.k_min = cs.k;
      const Routing r = run(name, cs.b, cs.k, c, kn);
      expect_well_formed(r, cs.b, cs.k);
      EXPECT_EQ(r.expert, ref.expert);
      EXPECT_EQ(r.counts, ref.counts);
      // Non-trivial knobs: still well formed.
      PolicyKnobs kn2;
      kn2.lambda = 2.f, kn2.p = 0.6f, kn2.beta = 0.5f, kn2.budget_j = 1.0, kn2.k_max = cs.b.E;
      expect_well_formed(run(name, cs.b, cs.k, c, kn2), cs.b, cs.b.E, {}, name != "cost");
    }
  }
}

TEST(PolicyTest, TiesGoToTheLowerIndex) {
  const Batch b = from_logits(2, 5, {1.f, 3.f, 3.f, 0.f, 3.f, /**/ 2.f, 2.f, 2.f, 2.f, 2.f});
  ExpertCosts same{std::vector<float>(5, 1.f), std::vector<float>(5, 0.1f)};
  for (const std::string& name : policy_names()) {
    SCOPED_TRACE(name);
    PolicyKnobs kn;
    kn.lambda = 3.f;  // equal costs: the same penalty for every expert, ties survive
    if (name == "top_p") kn.k_min = 2;
    const Routing r = run(name, b, 2, same, kn);
    EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 2, 0, 1}));
  }
  PolicyKnobs zero;
  zero.budget_j = 0;
  EXPECT_EQ(run("budget", b, 2, same, zero).expert, (std::vector<int32_t>{1, -1, 0, -1}));
}

TEST(PolicyTest, ExactLimitsEqualTopk) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const int E = 8, k = 1 + int(seed % 4);
    const Batch b = random_batch(seed, 17 + int64_t(seed), E);
    const ExpertCosts c = random_costs(seed, E);
    const Routing ref = reference_topk(b, k);
    PolicyKnobs kn;
    EXPECT_EQ(run("cost", b, k, c, kn).expert, ref.expert) << "lambda = 0";
    kn.reuse_min_tokens = 1;
    EXPECT_EQ(run("cost", b, k, c, kn).expert, ref.expert) << "lambda = 0 with reuse";
    kn = {};
    kn.p = 1.f, kn.k_min = k, kn.k_max = k;
    EXPECT_EQ(run("top_p", b, 2, c, kn).expert, ref.expert) << "p = 1, k_min = k_max = k";
    kn = {};
    kn.beta = 0.f;
    EXPECT_EQ(run("skip", b, k, c, kn).expert, ref.expert) << "beta = 0";
    // budget: infinite → topk at k_max; zero → each token's top-1.
    kn = {};
    kn.k_max = 4;
    kn.budget_j = kInf;
    const Routing ref4 = reference_topk(b, 4);
    EXPECT_EQ(run("budget", b, 2, c, kn).expert, ref4.expert) << "infinite budget";
    kn.budget_j = 0;
    const Routing z = run("budget", b, 2, c, kn);
    EXPECT_EQ(z.expert, truncated(ref4, 1).expert) << "zero budget";
    EXPECT_EQ(z.mean_experts_per_token(), 1.0);
    kn.k_min = 2;  // the floor follows k_min
    EXPECT_EQ(run("budget", b, 2, c, kn).expert, truncated(ref4, 2).expert) << "zero budget, k_min = 2";
    // A budget that buys everything exactly.
    kn = {};
    kn.k_max = 4;
    kn.budget_j = routing_energy(ref4, c) * (1 + 1e-9);
    EXPECT_EQ(run("budget", b, 2, c, kn).expert, ref4.expert) << "budget = full energy";
  }
}

TEST(PolicyTest, DoubleInputsMatchTheModelsTopk) {
  const int E = 7, k = 3;
  const Batch bf = random_batch(42, 23, E);
  std::vector<double> logits(bf.logits.begin(), bf.logits.end()), probs(size_t(23 * E));
  for (int64_t t = 0; t < 23; ++t) {  // a double softmax, so probabilities differ from the float ones in the last bits
    double m = -kInf, s = 0;
    for (int e = 0; e < E; ++e) m = std::max(m, logits[size_t(t * E + e)]);
    for (int e = 0; e < E; ++e) s += std::exp(logits[size_t(t * E + e)] - m);
    for (int e = 0; e < E; ++e) probs[size_t(t * E + e)] = std::exp(logits[size_t(t * E + e)] - m) / s;
  }
  Routing ref;
  select_topk<double>(probs.data(), 23, E, k, ref);
  const ExpertCosts c = random_costs(1, E);
  for (const std::string& name : policy_names()) {
    PolicyKnobs kn;
    if (name == "top_p") kn.k_min = k;
    Routing r;
    make_policy(name)->select(logits.data(), probs.data(), 23, E, k, c, kn, r);
    EXPECT_EQ(r.expert, ref.expert) << name;
  }
  // λ > 0 on doubles gives the same decisions as on floats when the logits are the same numbers.
  PolicyKnobs kn;
  kn.lambda = 1.5f;
  Routing rd;
  make_policy("cost")->select(logits.data(), probs.data(), 23, E, k, c, kn, rd);
  EXPECT_EQ(rd.expert, run("cost", bf, k, c, kn).expert);
}

TEST(PolicyTest, LargerLambdaLowersEnergyOnAverage) {
  const std::vector<float> lambdas = {0.f, 0.25f, 0.5f, 1.f, 2.f, 4.f, 8.f, 16.f};
  for (int64_t n : {1, 4, 16, 64}) {
    std::vector<double> mean(lambdas.size(), 0);
    for (uint64_t seed = 0; seed < 40; ++seed) {
      const Batch b = random_batch(100 + seed, n, 8, 1.0);
      const ExpertCosts c = random_costs(200 + seed, 8);
      for (size_t i = 0; i < lambdas.size(); ++i) {
        PolicyKnobs kn;
        kn.lambda = lambdas[i];
        mean[i] += routing_energy(run("cost", b, 2, c, kn), c) / 40;
      }
    }
    for (size_t i = 1; i < lambdas.size(); ++i)
      EXPECT_LE(mean[i], mean[i - 1] * (1 + 1e-12)) << "n=" << n << " lambda " << lambdas[i - 1] << " → " << lambdas[i];
    EXPECT_LT(mean.back(), 0.9 * mean.front()) << "n=" << n;
  }
}

TEST(PolicyTest, StepAwareCostReusesActiveExperts) {
  // Three tokens, k = 1, a = [2, 1, 1], b = 0, λ = 1: c̃ = [1.5, 0.75, 0.75]. Tokens 0 and 1 take expert 0; token 2
  // scores [-0.5, 0.75, -0.75] and takes expert 1. With reuse_min_tokens = 2 expert 0's fixed cost is sunk, token 2
  // scores [1.0, 0.75, -0.75] and joins expert 0: one expert instead of two.
  const Batch b = from_logits(3, 3, {5.f, 0.f, 0.f, 5.f, 0.f, 0.f, 1.f, 1.5f, 0.f});
  const ExpertCosts c{{2.f, 1.f, 1.f}, {0.f, 0.f, 0.f}};
  PolicyKnobs kn;
  kn.lambda = 1.f;
  const Routing r1 = run("cost", b, 1, c, kn);
  EXPECT_EQ(r1.expert, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_DOUBLE_EQ(routing_energy(r1, c), 3.0);
  kn.reuse_min_tokens = 2;
  const Routing r2 = run("cost", b, 1, c, kn);
  EXPECT_EQ(r2.expert, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_DOUBLE_EQ(routing_energy(r2, c), 2.0);
  kn.reuse_min_tokens = 3;  // expert 0 has only two tokens: no re-pricing
  EXPECT_EQ(run("cost", b, 1, c, kn).expert, r1.expert);

  // On random decoding-sized batches with fixed costs dominating, re-pricing lowers energy on average.
  double with = 0, without = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    const Batch rb = random_batch(300 + seed, 8, 8, 1.0);
    const ExpertCosts rc = random_costs(400 + seed, 8);
    PolicyKnobs k2;
    k2.lambda = 1.f;
    without += routing_energy(run("cost", rb, 2, rc, k2), rc);
    k2.reuse_min_tokens = 1;
    with += routing_energy(run("cost", rb, 2, rc, k2), rc);
  }
  EXPECT_LT(with, without);
}

TEST(PolicyTest, LargerBetaNeverAddsExperts) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Batch b = random_batch(seed, 31, 8);
    const ExpertCosts c = random_costs(seed, 8);
    std::vector<int> prev(31, 1 << 20);
    for (float beta : {0.f, 0.05f, 0.1f, 0.2f, 0.4f, 0.7f, 1.f}) {
      PolicyKnobs kn;
      kn.beta = beta;
      const Routing r = run("skip", b, 4, c, kn);
      expect_well_formed(r, b, 4);
      for (int64_t t = 0; t < 31; ++t) {
        EXPECT_LE(experts_of(r, t), prev[size_t(t)]) << "beta " << beta;
        EXPECT_GE(experts_of(r, t), 1);
        prev[size_t(t)] = experts_of(r, t);
      }
    }
  }
  // β = 1 keeps only the experts tied with the first slot.
  const Batch b = from_logits(1, 4, {2.f, 2.f, 1.f, 2.f});
  PolicyKnobs kn;
  kn.beta = 1.f;
  EXPECT_EQ(run("skip", b, 4, {}, kn).expert, (std::vector<int32_t>{0, 1, 3, -1}));
}

TEST(PolicyTest, SmallerPNeverAddsExperts) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Batch b = random_batch(seed, 31, 8);
    std::vector<int> prev(31, 1 << 20);
    for (float p : {1.f, 0.95f, 0.8f, 0.6f, 0.4f, 0.2f, 0.01f}) {
      PolicyKnobs kn;
      kn.p = p, kn.k_min = 1, kn.k_max = 8;
      const Routing r = run("top_p", b, 2, {}, kn);
      expect_well_formed(r, b, 8);
      for (int64_t t = 0; t < 31; ++t) {
        EXPECT_LE(experts_of(r, t), prev[size_t(t)]) << "p " << p;
        prev[size_t(t)] = experts_of(r, t);
        double cum = 0;  // the chosen set reaches p (or is all K experts)
        for (int s = 0; s < r.k; ++s)
          if (int32_t e = r.expert[size_t(t * r.k + s)]; e >= 0) cum += b.probs[size_t(t * 8 + e)];
        if (experts_of(r, t) < 8) {
          EXPECT_GE(cum, double(p));
        }
        // and is the smallest such set: without its last expert it falls short of p
        if (experts_of(r, t) > 1) {
          EXPECT_LT(cum - b.probs[size_t(t * 8 + r.expert[size_t(t * r.k + experts_of(r, t) - 1)])], double(p));
        }
      }
    }
  }
  // The clamp: p tiny with k_min = 2 still takes 2; p = 1 with k_max = 3 takes 3.
  const Batch b = random_batch(9, 5, 6);
  PolicyKnobs kn;
  kn.p = 1e-6f, kn.k_min = 2, kn.k_max = 3;
  for (int64_t t = 0; t < 5; ++t) EXPECT_EQ(experts_of(run("top_p", b, 2, {}, kn), t), 2);
  kn.p = 1.f;
  for (int64_t t = 0; t < 5; ++t) EXPECT_EQ(experts_of(run("top_p", b, 2, {}, kn), t), 3);
}

TEST(PolicyTest, BudgetIsRespectedAndMonotone) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const int E = 8;
    const int64_t n = 1 + int64_t(seed * 7 % 45);
    const Batch b = random_batch(500 + seed, n, E);
    const ExpertCosts c = random_costs(600 + seed, E);
    PolicyKnobs kn;
    kn.k_max = 4;
    kn.budget_j = 0;
    const double floor = routing_energy(run("budget", b, 2, c, kn), c);
    kn.budget_j = kInf;
    const double full = routing_energy(run("budget", b, 2, c, kn), c);
    ASSERT_LE(floor, full);
    double prev = kInf;
    std::vector<int> prev_k(size_t(n), 1 << 20);
    for (int i = 24; i >= 0; --i) {  // budgets from above full down to below the floor
      kn.budget_j = (full * 1.1) * i / 20.0;
      const Routing r = run("budget", b, 2, c, kn);
      expect_well_formed(r, b, 4);
      const double j = routing_energy(r, c);
      if (floor <= kn.budget_j) {
        EXPECT_LE(j, kn.budget_j * (1 + 1e-9) + 1e-12) << "budget " << kn.budget_j;
      } else {
        EXPECT_NEAR(j, floor, 1e-9 * floor) << "floor alone exceeds the budget: exactly the floor";
      }
      EXPECT_LE(j, prev * (1 + 1e-12)) << "smaller budget, more energy at budget " << kn.budget_j;
      EXPECT_GE(j, floor * (1 - 1e-12));
      prev = j;
    }
  }
}

TEST(PolicyTest, BudgetPrefersExpertsAlreadyActive) {
  // Token 0: top-2 = {0, 1}; token 1: top-2 = {1, 2}. The floor activates 0 and 1. Budget for one more b: token 0's
  // expert 1 (active, price b) fits; token 1's expert 2 would need a_2 too and does not.
  const Batch b = from_logits(2, 3, {3.f, 2.f, -5.f, -5.f, 3.f, 2.5f});
  const ExpertCosts c{{1.f, 1.f, 1.f}, {0.1f, 0.1f, 0.1f}};
  PolicyKnobs kn;
  kn.k_max = 2;
  kn.budget_j = 2.0 + 0.2 + 0.15;  // floor (a0 + a1 + 2 b) + room for one marginal pair
  const Routing r = run("budget", b, 2, c, kn);
  EXPECT_EQ(r.expert, (std::vector<int32_t>{0, 1, 1, -1}));
  EXPECT_EQ(r.distinct_experts(), 2);
}

TEST(PolicyTest, MaskNeverSelectsPrunedExperts) {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const int E = 6;
    const Batch b = random_batch(700 + seed, 19, E);
    const ExpertCosts c = random_costs(seed, E);
    std::vector<bool> mask(size_t(E), false);
    mask[seed % E] = true, mask[(seed + 2) % E] = true;
    for (const std::string& name : policy_names()) {
      SCOPED_TRACE(name);
      PolicyKnobs kn;
      kn.mask = mask;
      kn.lambda = 1.f;
      const Routing r = run(name, b, 3, c, kn);
      expect_well_formed(r, b, 3, mask, name != "cost");
      for (int e = 0; e < E; ++e)
        if (mask[size_t(e)]) {
          EXPECT_EQ(r.counts[size_t(e)], 0);
        }
    }
    // mask = topk with pruned experts at −inf
    Batch masked = b;
    for (int64_t t = 0; t < b.n; ++t)
      for (int e = 0; e < E; ++e)
        if (mask[size_t(e)]) masked.probs[size_t(t * E + e)] = -1.f;
    PolicyKnobs kn;
    kn.mask = mask;
    EXPECT_EQ(run("mask", b, 3, c, kn).expert, reference_topk(masked, 3).expert);
  }
  // Fewer unmasked experts than k: all of them, the rest of the slots unused.
  const Batch b = random_batch(77, 9, 6);
  PolicyKnobs kn;
  kn.mask = {true, false, true, true, false, true};
  for (const std::string& name : policy_names()) {
    const Routing r = run(name, b, 4, random_costs(1, 6), kn);
    expect_well_formed(r, b, 4, kn.mask);
    for (int64_t t = 0; t < 9; ++t) EXPECT_EQ(experts_of(r, t), 2) << name;
    EXPECT_EQ(r.counts[1] + r.counts[4], 18) << name;
  }
}

TEST(PolicyTest, EnergyAccounting) {
  // 3 tokens, E = 4: pairs (0:{2,0}) (1:{2,-1}) (2:{1,2}); expert 3 idle.
  Routing r;
  r.reset(3, 2, 4);
  r.expert = {2, 0, 2, -1, 1, 2};
  r.recount();
  const ExpertCosts c{{1.f, 2.f, 4.f, 8.f}, {0.5f, 0.25f, 0.125f, 1.f}};
  EXPECT_DOUBLE_EQ(routing_energy(r, c), (1 + 2 + 4) + (0.5 + 0.25 + 3 * 0.125));
  const std::vector<double> pt = per_token_cost(c, 4);
  EXPECT_DOUBLE_EQ(pt[2], 4.0 / 4 + 0.125);
  const std::vector<float> probs = {1, 0, 0, 0, 0, 0.5f, 0.5f, 0, 0, 0, 0, 1, 0.25f, 0.25f, 0.25f, 0.25f};
  const double want = pt[0] + 0.5 * (pt[1] + pt[2]) + pt[3] + 0.25 * (pt[0] + pt[1] + pt[2] + pt[3]);
  EXPECT_NEAR(expected_expert_energy(probs.data(), 4, 4, c), want, 1e-12);
  const std::vector<double> pd(probs.begin(), probs.end());
  EXPECT_NEAR(expected_expert_energy(pd.data(), 4, 4, c), want, 1e-12);
  EXPECT_NE(error_of([&] { routing_energy(r, ExpertCosts{{1.f}, {1.f}}); }).find("fixed"), std::string::npos);
}

TEST(PolicyTest, BadKnobsNameTheKnob) {
  const Batch b = random_batch(1, 4, 4);
  const ExpertCosts c = random_costs(1, 4);
  auto msg = [&](const std::string& policy, PolicyKnobs kn, const ExpertCosts& costs, int model_k = 2) {
    return error_of([&] { run(policy, b, model_k, costs, kn); });
  };
  auto expect_names = [](const std::string& m, const std::string& what) {
    EXPECT_NE(m.find(what), std::string::npos) << "expected '" << what << "' in: " << m;
  };
  PolicyKnobs kn;
  kn.lambda = -0.5f;
  expect_names(msg("cost", kn, c), "lambda");
  kn = {};
  kn.lambda = std::numeric_limits<float>::infinity();
  expect_names(msg("cost", kn, c), "lambda");
  for (float p : {0.f, -0.1f, 1.5f, std::nanf("")}) {
    kn = {};
    kn.p = p;
    expect_names(msg("top_p", kn, c), "knob p");
  }
  for (float beta : {-0.1f, 1.1f, std::nanf("")}) {
    kn = {};
    kn.beta = beta;
    expect_names(msg("skip", kn, c), "beta");
  }
  kn = {};
  kn.k_max = 5;
  expect_names(msg("topk", kn, c), "k_max");
  kn = {};
  kn.k_min = 0;
  expect_names(msg("top_p", kn, c), "k_min");
  kn = {};
  kn.k_min = 3, kn.k_max = 2;
  expect_names(msg("top_p", kn, c), "k_min");
  kn = {};
  kn.k_min = 3;  // k_max = 0 → the model's k = 2
  expect_names(msg("budget", kn, c), "k_max");
  kn = {};
  kn.budget_j = -1;
  expect_names(msg("budget", kn, c), "budget_j");
  kn = {};
  kn.budget_j = std::nan("");
  expect_names(msg("budget", kn, c), "budget_j");
  kn = {};
  kn.mask = {true, true, true, true};
  expect_names(msg("mask", kn, c), "mask");
  kn = {};
  kn.mask = {true, false};
  expect_names(msg("mask", kn, c), "mask");
  kn = {};
  kn.reuse_min_tokens = -1;
  expect_names(msg("cost", kn, c), "reuse_min_tokens");
  expect_names(msg("topk", {}, c, 5), "model k");
  // Costs: wrong length, negative, non-finite, missing where the policy prices experts.
  ExpertCosts bad = c;
  bad.fixed.pop_back();
  expect_names(msg("cost", {}, bad), "fixed");
  expect_names(msg("topk", {}, bad), "fixed");  // given costs are checked even where unused
  bad = c;
  bad.per_token[1] = -1.f;
  expect_names(msg("budget", {}, bad), "per_token[1]");
  bad = c;
  bad.fixed[2] = std::numeric_limits<float>::infinity();
  expect_names(msg("budget", {}, bad), "fixed");
  expect_names(msg("budget", {}, {}), "expert costs");
  expect_names(msg("cost", {}, {}), "expert costs");
  EXPECT_EQ(msg("topk", {}, {}), "(no error)");
  // NaN router outputs are an input error, not undefined behaviour in a sort.
  Batch nan = b;
  nan.probs[5] = std::nanf("");
  EXPECT_NE(error_of([&] { run("topk", nan, 2, c, {}); }).find("NaN"), std::string::npos);
}

TEST(PolicyTest, ModelCallbackAdapter) {
  static_assert(std::is_same_v<PolicySelectFn<float>, RouterSelect<float>>);
  static_assert(std::is_same_v<PolicySelectFn<double>, RouterSelect<double>>);
  const int E = 6;
  const Batch b = random_batch(3, 10, E);
  std::vector<ExpertCosts> layers = {random_costs(1, E), random_costs(2, E), random_costs(3, E)};
  PolicyKnobs kn;
  kn.lambda = 2.f;
  std::shared_ptr<const RoutingPolicy> cost = make_policy("cost");
  const RouterSelect<float> sel = make_policy_select<float>(cost, E, 2, layers, kn);
  for (int l = 0; l < 3; ++l) {
    Routing r;
    sel(l, b.logits.data(), b.probs.data(), b.n, r);
    EXPECT_EQ(r.expert, run("cost", b, 2, layers[size_t(l)], kn).expert) << "layer " << l;
  }
  Routing r;
  EXPECT_NE(error_of([&] { sel(3, b.logits.data(), b.probs.data(), b.n, r); }).find("layer 3"), std::string::npos);
  // One cost vector serves every layer; none is fine for policies that do not price experts.
  const auto one = make_policy_select<float>(cost, E, 2, {layers[1]}, kn);
  one(7, b.logits.data(), b.probs.data(), b.n, r);
  EXPECT_EQ(r.expert, run("cost", b, 2, layers[1], kn).expert);
  const auto plain = make_policy_select<double>(make_policy("topk"), E, 2, {}, {});
  std::vector<double> pl(b.logits.begin(), b.logits.end()), pp(b.probs.begin(), b.probs.end());
  plain(0, pl.data(), pp.data(), b.n, r);
  EXPECT_EQ(r.expert, reference_topk(b, 2).expert);
  // Bad knobs fail when the callback is built, not mid-forward.
  PolicyKnobs bad;
  bad.p = 2.f;
  EXPECT_NE(error_of([&] { make_policy_select<float>(cost, E, 2, layers, bad); }).find("knob p"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
