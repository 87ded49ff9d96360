// The fused MoE layer's routing policy block (ops/moe_route_policy.h) and its host-side filling and validation
// (ops/moe_route_policy_check.h), without a GPU: layout the kernels rely on, names, defaults, errors that name the
// knob, and agreement with the CPU policies' own validation (moe/policy.h validate_knobs / validate_costs) on the
// same knobs.
#include "ops/moe_route_policy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "moe/policy.h"
#include "moe_route_policy_util.h"
#include "ops/moe_route_policy_check.h"

namespace wattmoe {
namespace {

constexpr float kNanF = std::numeric_limits<float>::quiet_NaN();
constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Expects validate_route_policy to throw an Error whose message contains `what`.
void expect_rejected(const MoeRoutePolicy& p, int E, int k, int S, const std::string& what) {
  try {
    validate_route_policy(p, E, k, S);
    ADD_FAILURE() << "accepted; expected an error naming '" << what << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << "message: " << e.what();
  }
}

ExpertCosts costs_of(int E) {
  ExpertCosts c;
  for (int e = 0; e < E; ++e) c.fixed.push_back(1.f + float(e)), c.per_token.push_back(0.01f * float(e + 1));
  return c;
}

TEST(MoeRoutePolicyBlock, LayoutTheKernelsRead) {
  EXPECT_EQ(sizeof(MoeRoutePolicy), 2120u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, policy), 0u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, k_max), 4u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, lambda), 16u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, cost_experts), 28u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, budget_j), 32u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, mask), 40u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, fixed), 72u);
  EXPECT_EQ(offsetof(MoeRoutePolicy, per_token), 72u + 4u * kMoeRouteMaxExperts);
}

TEST(MoeRoutePolicyBlock, DefaultIsTopKWithTheModelsK) {
  const MoeRoutePolicy p{};
  EXPECT_EQ(p.policy, MoeRoute::TopK);
  EXPECT_EQ(p.k_max, 0);
  EXPECT_EQ(p.k_min, 1);
  EXPECT_EQ(p.cost_experts, 0);
  EXPECT_EQ(p.budget_j, kInf);
  EXPECT_EQ(route_policy_k(p, 2), 2);
  for (int e = 0; e < kMoeRouteMaxExperts; ++e) EXPECT_FALSE(moe_route_pruned(p, e));
  EXPECT_NO_THROW(validate_route_policy(p, 8, 2, 2));
  EXPECT_NO_THROW(validate_route_policy(p, 1, 1, 1));
  EXPECT_NO_THROW(validate_route_policy(p, 256, 8, 8));
}

TEST(MoeRoutePolicyBlock, NamesMatchTheCpuPolicies) {
  ASSERT_EQ(policy_names().size(), size_t(kMoeRouteCount));
  for (int i = 0; i < kMoeRouteCount; ++i) {
    const std::string name = moe_route_name(MoeRoute(i));
    EXPECT_EQ(name, policy_names()[size_t(i)]);
    MoeRoute r{};
    ASSERT_TRUE(moe_route_from_name(name, r)) << name;
    EXPECT_EQ(int(r), i);
    EXPECT_EQ(int(parse_moe_route(name)), i);
  }
  MoeRoute r{};
  EXPECT_FALSE(moe_route_from_name("top-k", r));
  try {
    parse_moe_route("greedy");
    ADD_FAILURE() << "unknown name accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("topk, cost, top_p, skip, budget, mask"), std::string::npos) << e.what();
  }
}

TEST(MoeRoutePolicyBlock, MaskBits) {
  MoeRoutePolicy p{};
  std::vector<bool> m(40, false);
  m[0] = m[31] = m[32] = m[39] = true;
  set_route_mask(p, m, 40);
  EXPECT_EQ(p.mask[0], 0x80000001u);
  EXPECT_EQ(p.mask[1], 0x81u);
  for (int w = 2; w < 8; ++w) EXPECT_EQ(p.mask[w], 0u);
  for (int e = 0; e < 40; ++e) EXPECT_EQ(moe_route_pruned(p, e), bool(m[size_t(e)])) << e;
  EXPECT_NO_THROW(validate_route_policy(p, 40, 2, 4));
  moe_route_set_pruned(p, 31, false);
  EXPECT_EQ(p.mask[0], 1u);
  set_route_mask(p, {}, 40);
  for (int w = 0; w < 8; ++w) EXPECT_EQ(p.mask[w], 0u);
  EXPECT_THROW(set_route_mask(p, std::vector<bool>(39, false), 40), Error);
  // A bit past the last expert is a caller's mistake, not something to ignore.
  moe_route_set_pruned(p, 40, true);
  expect_rejected(p, 40, 2, 4, "prunes expert 40");
  // Every expert pruned.
  MoeRoutePolicy q{};
  set_route_mask(q, std::vector<bool>(8, true), 8);
  expect_rejected(q, 8, 2, 2, "prunes all 8 experts");
}

TEST(MoeRoutePolicyBlock, CostsAreCheckedAndCopied) {
  MoeRoutePolicy p{};
  const ExpertCosts c = costs_of(8);
  set_route_costs(p, c.fixed, c.per_token, 8);
  EXPECT_EQ(p.cost_experts, 8);
  for (int e = 0; e < 8; ++e) {
    EXPECT_EQ(p.fixed[e], c.fixed[size_t(e)]);
    EXPECT_EQ(p.per_token[e], c.per_token[size_t(e)]);
  }
  for (int e = 8; e < kMoeRouteMaxExperts; ++e) {
    EXPECT_EQ(p.fixed[e], 0.f);
    EXPECT_EQ(p.per_token[e], 0.f);
  }
  set_route_costs(p, {}, {}, 8);  // clears
  EXPECT_EQ(p.cost_experts, 0);
  EXPECT_EQ(p.fixed[3], 0.f);

  auto expect_msg = [&](std::vector<float> f, std::vector<float> b, const std::string& what) {
    try {
      set_route_costs(p, f, b, 8);
      ADD_FAILURE() << "accepted; expected an error naming '" << what << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_msg(std::vector<float>(7, 1.f), c.per_token, "fixed (a_e");            // wrong length
  expect_msg(c.fixed, std::vector<float>(9, 1.f), "per_token (b_e");            // wrong length
  expect_msg(c.fixed, {}, "has 0 entries");                                      // one of two
  auto neg = c.fixed;
  neg[2] = -1.f;
  expect_msg(neg, c.per_token, "fixed[2] = -1");
  auto nan = c.per_token;
  nan[5] = kNanF;
  expect_msg(c.fixed, nan, "per_token[5]");
  auto inf = c.per_token;
  inf[0] = kInfF;
  expect_msg(c.fixed, inf, "per_token[0]");
  EXPECT_THROW(set_route_costs(p, c.fixed, c.per_token, 300), Error);  // E past the kernels' limit
}

TEST(MoeRoutePolicyBlock, BadKnobsNameTheKnob) {
  const int E = 8, k = 2, S = 4;
  const ExpertCosts c = costs_of(E);
  auto base = [&](MoeRoute r) {
    MoeRoutePolicy p{};
    p.policy = r;
    set_route_costs(p, c.fixed, c.per_token, E);
    return p;
  };
  MoeRoutePolicy p = base(MoeRoute::Cost);
  p.lambda = kNanF;
  expect_rejected(p, E, k, S, "lambda = nan");
  p.lambda = -0.5f;
  expect_rejected(p, E, k, S, "lambda = -0.5");
  p.lambda = kInfF;
  expect_rejected(p, E, k, S, "lambda = inf");

  p = base(MoeRoute::TopP);
  for (float v : {0.f, -0.1f, 1.5f, kNanF}) {
    p.p = v;
    expect_rejected(p, E, k, S, "policy knob p =");
  }
  p = base(MoeRoute::Skip);
  for (float v : {-0.1f, 1.01f, kNanF}) {
    p.beta = v;
    expect_rejected(p, E, k, S, "policy knob beta");
  }
  p = base(MoeRoute::TopK);
  p.k_max = 9;
  expect_rejected(p, E, k, S, "k_max = 9");
  p.k_max = -1;
  expect_rejected(p, E, k, S, "k_max = -1");
  p.k_max = 5;  // <= E but past the layer's 4 slots
  expect_rejected(p, E, k, S, "slot capacity 4");
  p.k_max = 0;
  expect_rejected(p, E, 6, 4, "slot capacity 4");  // the model's k itself past the capacity
  p.k_max = 3;
  p.k_min = 0;
  expect_rejected(p, E, k, S, "k_min = 0");
  p.k_min = 4;
  expect_rejected(p, E, k, S, "k_min = 4 exceeds k_max = 3");
  p = base(MoeRoute::Budget);
  p.budget_j = std::nan("");
  expect_rejected(p, E, k, S, "budget_j");
  p.budget_j = -1;
  expect_rejected(p, E, k, S, "budget_j = -1");
  p.budget_j = 0;
  EXPECT_NO_THROW(validate_route_policy(p, E, k, S));
  p = base(MoeRoute::Cost);
  p.reuse_min_tokens = -2;
  expect_rejected(p, E, k, S, "reuse_min_tokens = -2");
  p = base(MoeRoute::TopK);
  p.policy = MoeRoute(9);
  expect_rejected(p, E, k, S, "policy id 9");

  // Policies that price experts need all E costs; the others take none or all.
  for (MoeRoute r : {MoeRoute::Cost, MoeRoute::Budget}) {
    MoeRoutePolicy q{};
    q.policy = r;
    expect_rejected(q, E, k, S, "prices experts");
    q.cost_experts = 7;
    expect_rejected(q, E, k, S, "cost_experts = 7");
  }
  for (MoeRoute r : {MoeRoute::TopK, MoeRoute::TopP, MoeRoute::Skip, MoeRoute::Mask}) {
    MoeRoutePolicy q{};
    q.policy = r;
    EXPECT_NO_THROW(validate_route_policy(q, E, k, S)) << moe_route_name(r);
    set_route_costs(q, c.fixed, c.per_token, E);
    EXPECT_NO_THROW(validate_route_policy(q, E, k, S)) << moe_route_name(r);
  }
  // Costs written into the block directly are checked too.
  p = base(MoeRoute::Budget);
  p.fixed[3] = -1.f;
  expect_rejected(p, E, k, S, "fixed[3] = -1");
  p = base(MoeRoute::Budget);
  p.per_token[7] = kNanF;
  expect_rejected(p, E, k, S, "per_token[7]");
}

// On the same knobs the block's validation and the CPU policies' agree (with S = E, where the slot capacity cannot
// bind), and the conversion copies every field.
TEST(MoeRoutePolicyBlock, AgreesWithTheCpuValidation) {
  const int E = 6, k = 2;
  const ExpertCosts c = costs_of(E);
  std::vector<PolicyKnobs> sets;
  for (float lambda : {0.f, 0.7f, -1.f, kNanF})
    for (float p : {1.f, 0.5f, 0.f, 1.2f})
      for (int k_min : {1, 2, 0, 5})
        for (int k_max : {0, 3, 7})
          for (float beta : {0.f, 0.3f, 2.f})
            for (double budget : {kInf, 0.0, 1.5, -1.0}) {
              PolicyKnobs kn;
              kn.lambda = lambda, kn.p = p, kn.k_min = k_min, kn.k_max = k_max, kn.beta = beta, kn.budget_j = budget;
              sets.push_back(kn);
            }
  PolicyKnobs masked;
  masked.mask = {true, false, true, true, true, true};
  sets.push_back(masked);
  masked.mask.assign(size_t(E), true);
  sets.push_back(masked);
  int accepted = 0;
  for (const PolicyKnobs& kn : sets)
    for (const std::string& name : policy_names()) {
      bool cpu_ok = true, gpu_ok = true;
      try {
        validate_knobs(kn, E, k);
      } catch (const Error&) {
        cpu_ok = false;
      }
      try {
        const MoeRoutePolicy p = test::to_route_policy(name, kn, c, E);
        validate_route_policy(p, E, k, E);
        EXPECT_EQ(p.lambda, kn.lambda);
        EXPECT_EQ(p.k_min, kn.k_min);
        EXPECT_EQ(p.k_max, kn.k_max);
        EXPECT_EQ(p.budget_j, kn.budget_j);
        EXPECT_EQ(p.cost_experts, E);
        EXPECT_EQ(moe_route_name(p.policy), name);
        for (int e = 0; e < E; ++e) EXPECT_EQ(moe_route_pruned(p, e), !kn.mask.empty() && kn.mask[size_t(e)]);
      } catch (const Error&) {
        gpu_ok = false;
      }
      EXPECT_EQ(cpu_ok, gpu_ok) << name << " lambda=" << kn.lambda << " p=" << kn.p << " k_min=" << kn.k_min
                                << " k_max=" << kn.k_max << " beta=" << kn.beta << " budget=" << kn.budget_j;
      accepted += gpu_ok;
    }
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace wattmoe
