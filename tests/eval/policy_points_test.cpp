// Policy points (eval/policy_points.h): the text and JSON forms, '/' lists, the keys each policy takes, clear errors,
// and the RoutingSpec a point resolves to (masks of the least-used experts per layer, analytic costs).
#include <gtest/gtest.h>

#include "../test_util.h"
#include "eval/policy_points.h"
#include "moe/routing_spec.h"

namespace wattmoe {
namespace {

using test::error_of;

ModelConfig model(int E = 8, int k = 2, int layers = 3) {
  ModelConfig c;
  c.hidden_size = 64, c.num_layers = layers, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
  c.num_experts = E, c.top_k = k, c.intermediate_size = c.moe_intermediate_size = 128;
  return c;
}

TEST(PolicyPoints, ParsesTheBriefsList) {
  const std::vector<PolicyPoint> p = parse_points(
      "topk; topk k_max=1; skip beta=0.3/0.5/0.7; top_p p=0.5/0.7/0.9; cost lambda=1 reuse=2; mask r=2");
  ASSERT_EQ(p.size(), 10u);
  EXPECT_EQ(p[0].label, "topk");
  EXPECT_EQ(p[0].policy, "topk");
  EXPECT_EQ(p[0].knobs.k_max, 0);
  EXPECT_EQ(p[1].label, "topk k_max=1");
  EXPECT_EQ(p[1].knobs.k_max, 1);
  EXPECT_EQ(p[2].label, "skip beta=0.3");
  EXPECT_FLOAT_EQ(p[3].knobs.beta, 0.5f);
  EXPECT_EQ(p[4].label, "skip beta=0.7");
  EXPECT_FLOAT_EQ(p[6].knobs.p, 0.7f);
  EXPECT_EQ(p[8].policy, "cost");
  EXPECT_FLOAT_EQ(p[8].knobs.lambda, 1.f);
  EXPECT_EQ(p[8].knobs.reuse_min_tokens, 2);
  EXPECT_TRUE(p[8].prices());
  EXPECT_EQ(p[9].mask_least_used, 2);
}

TEST(PolicyPoints, LabelsAliasesAndSpacing) {
  const PolicyPoint a = parse_point("  top_p   p=0.8  k=3 k_min=2 label=mild ");
  EXPECT_EQ(a.label, "mild");
  EXPECT_EQ(a.knobs.k_max, 3);
  EXPECT_EQ(a.knobs.k_min, 2);
  const PolicyPoint b = parse_point("topk   experts=3,5");
  EXPECT_EQ(b.label, "topk experts=3,5");
  EXPECT_EQ(b.mask_experts, (std::vector<int>{3, 5}));
  const PolicyPoint c = parse_point("cost lambda=2 costs=/tmp/a/b.json expert_shape=4096x14336");
  EXPECT_EQ(c.costs, "/tmp/a/b.json");  // a path's '/' is not a list
  EXPECT_EQ(c.expert_shape, "4096x14336");
  EXPECT_EQ(parse_points("budget budget_j=inf")[0].knobs.budget_j, std::numeric_limits<double>::infinity());
}

TEST(PolicyPoints, ErrorsNameThePointAndKey) {
  EXPECT_NE(error_of([] { parse_point("topq"); }).find("topk"), std::string::npos);  // lists the known policies
  EXPECT_NE(error_of([] { parse_point("skip p=0.3"); }).find("skip does not take p"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("skip beta=abc"); }).find("beta=abc is not a number"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("skip beta"); }).find("not KEY=VALUE"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("topk k_max=1 k=2"); }).find("given twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("topk speed=2"); }).find("unknown key 'speed'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("mask"); }).find("mask needs r=N"), std::string::npos);
  EXPECT_NE(error_of([] { parse_point("cost expert_shape=4096"); }).find("HxI"), std::string::npos);
  EXPECT_NE(error_of([] { parse_points("topk; topk"); }).find("labelled 'topk'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_points("skip beta=0.3/0.5 k_min=1/2"); }).find("only one key"), std::string::npos);
  EXPECT_NE(error_of([] { parse_points(" ; "); }).find("no policy points"), std::string::npos);
}

TEST(PolicyPoints, JsonFormMatchesTheTextForm) {
  const Json j = Json::parse(R"(["topk", "skip beta=0.3/0.5", {"policy": "top_p", "p": 0.7, "k_min": 1},
                                {"policy": "mask", "experts": [1, 2], "label": "no12"}])");
  const std::vector<PolicyPoint> p = parse_points_json(j, "points.json");
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[2].label, "skip beta=0.5");
  EXPECT_EQ(p[3].policy, "top_p");
  EXPECT_FLOAT_EQ(p[3].knobs.p, 0.7f);
  EXPECT_EQ(p[4].label, "no12");
  EXPECT_EQ(p[4].mask_experts, (std::vector<int>{1, 2}));
  EXPECT_NE(error_of([] { parse_points_json(Json::parse(R"([{"beta": 0.5}])"), "f.json"); }).find("f.json"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_points_json(Json::parse("{}"), "f.json"); }).find("array"), std::string::npos);
}

TEST(PolicyPoints, LeastUsedExperts) {
  EXPECT_EQ(least_used_experts({5, 1, 9, 1, 7}, 2), (std::vector<int>{1, 3}));
  EXPECT_EQ(least_used_experts({5, 1, 9, 0, 7}, 3), (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(least_used_experts({2, 2, 2, 2}, 1), (std::vector<int>{3}));  // ties: the higher index goes first
}

TEST(PolicyPoints, SpecsForAModel) {
  const ModelConfig c = model();
  const std::vector<std::vector<int64_t>> usage{{8, 7, 6, 5, 4, 3, 2, 1}, {1, 2, 3, 4, 5, 6, 7, 8},
                                                {5, 5, 0, 5, 5, 5, 9, 5}};
  const RoutingSpec top2 = point_spec(parse_point("topk"), c, {}, 8192);
  EXPECT_TRUE(is_model_topk(top2, c.top_k));
  EXPECT_TRUE(top2.costs.empty());
  const RoutingSpec top1 = point_spec(parse_point("topk k_max=1"), c, {}, 8192);
  EXPECT_FALSE(is_model_topk(top1, c.top_k));

  const RoutingSpec m = point_spec(parse_point("mask r=2"), c, usage, 8192);
  ASSERT_EQ(m.layer_knobs.size(), 3u);
  EXPECT_EQ(m.layer_knobs[0].mask, (std::vector<bool>{0, 0, 0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(m.layer_knobs[1].mask, (std::vector<bool>{1, 1, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(m.layer_knobs[2].mask, (std::vector<bool>{0, 0, 1, 0, 0, 0, 0, 1}));
  EXPECT_NE(error_of([&] { point_spec(parse_point("mask r=2"), c, {}, 8192); }).find("point 'mask r=2'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { point_spec(parse_point("mask r=8"), c, usage, 8192); }).find("leaves no expert"),
            std::string::npos);
  EXPECT_NE(error_of([&] { point_spec(parse_point("topk experts=8"), c, {}, 1); }).find("not an expert id"),
            std::string::npos);
  // validate_knobs' own errors come through with the point's name.
  EXPECT_NE(error_of([&] { point_spec(parse_point("topk k_max=9"), c, {}, 1); }).find("point 'topk k_max=9'"),
            std::string::npos);

  const RoutingSpec cost = point_spec(parse_point("cost lambda=1 reuse=2"), c, {}, 8);
  ASSERT_EQ(cost.costs.size(), 3u);
  ASSERT_EQ(cost.costs[0].fixed.size(), 8u);
  EXPECT_GT(cost.costs[0].fixed[0], 0.f);
  EXPECT_GT(cost.costs[0].per_token[0], 0.f);
  EXPECT_EQ(cost.knobs.reuse_min_tokens, 2);
  // A larger expert shape prices higher.
  const RoutingSpec big = point_spec(parse_point("cost lambda=1 expert_shape=4096x14336"), c, {}, 8);
  EXPECT_GT(big.costs[0].fixed[0], 10 * cost.costs[0].fixed[0]);
  EXPECT_EQ(point_json(parse_point("skip beta=0.5"))["knobs"]["beta"], 0.5);
}

}  // namespace
}  // namespace wattmoe
