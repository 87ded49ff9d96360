// Static pruning by calibration use (eval/routing_setup.h --prune-least-used R --calibration FILE): the r least-used
// experts of each MoE layer are masked in that layer's knobs (and only there), --mask still applies everywhere, the
// selection never takes a pruned expert, and bad input is refused naming the flag.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "eval/routing_setup.h"
#include "io/json.h"

namespace wattmoe {
namespace {

using test::error_of;

ModelConfig model() {
  ModelConfig c;
  c.hidden_size = 64, c.num_layers = 3, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
  c.num_experts = 4, c.top_k = 2, c.intermediate_size = c.moe_intermediate_size = 128;
  return c;
}

std::string calibration(const test::TempDir& d, const Json& counts) {
  write_json_file(d.file("cal.json"), Json{{"bits_per_byte", 2.0}, {"expert_counts", counts}});
  return d.file("cal.json");
}

std::vector<bool> mask_of(std::initializer_list<int> ids, int E = 4) {
  std::vector<bool> m(size_t(E), false);
  for (int e : ids) m[size_t(e)] = true;
  return m;
}

TEST(RoutingPruning, MasksTheLeastUsedExpertsOfEachLayer) {
  test::TempDir d;
  RoutingOptions a;
  a.prune_least_used = 1;
  a.calibration = calibration(d, {{"0", {5, 1, 9, 7}}, {"1", {0, 3, 3, 8}}, {"2", {4, 4, 6, 2}}});
  const RoutingSetup r = make_routing(a, model(), 16);
  ASSERT_EQ(r.layer_masks.size(), 3u);
  EXPECT_EQ(r.layer_masks[0], mask_of({1}));
  EXPECT_EQ(r.layer_masks[1], mask_of({0}));
  EXPECT_EQ(r.layer_masks[2], mask_of({3}));
  const RoutingSpec s = r.spec();
  ASSERT_EQ(s.layer_knobs.size(), 3u);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(s.knobs_for(l).mask, r.layer_masks[size_t(l)]) << l;
  EXPECT_TRUE(s.knobs.mask.empty());  // nothing pruned outside the per-layer knobs
  EXPECT_EQ(r.describe()["pruned"]["layers"]["1"], Json::array({0}));

  a.prune_least_used = 2;  // ties: the higher index goes first (least_used_experts)
  a.mask = "2";            // and --mask applies in every layer on top
  const RoutingSetup r2 = make_routing(a, model(), 16);
  EXPECT_EQ(r2.layer_masks[0], mask_of({0, 1, 2}));
  EXPECT_EQ(r2.layer_masks[1], mask_of({0, 2}));
  EXPECT_EQ(r2.layer_masks[2], mask_of({1, 2, 3}));

  // The selection of a pruned layer never takes a pruned expert: with 2 of 4 left, top-2 is exactly those two.
  a.mask.clear();
  const RoutingSetup r3 = make_routing(a, model(), 16);
  const std::vector<float> logits = {3, 2, 1, 0, 0, 1, 2, 3}, probs = {0.6f, 0.25f, 0.1f, 0.05f, 0.05f, 0.1f, 0.25f,
                                                                      0.6f};
  Routing out;
  r3.policy->select(logits.data(), probs.data(), 2, 4, 2, r3.layer_costs[0], r3.spec().knobs_for(0), out);
  EXPECT_EQ(out.expert, (std::vector<int32_t>{2, 3, 3, 2}));  // layer 0 keeps experts 2 and 3
}

TEST(RoutingPruning, Errors) {
  test::TempDir d;
  RoutingOptions a;
  a.prune_least_used = 1;
  EXPECT_NE(error_of([&] { make_routing(a, model(), 16); }).find("needs --calibration"), std::string::npos);
  a.prune_least_used = 4;
  a.calibration = calibration(d, {{"0", {1, 1, 1, 1}}, {"1", {1, 1, 1, 1}}, {"2", {1, 1, 1, 1}}});
  EXPECT_NE(error_of([&] { make_routing(a, model(), 16); }).find("--prune-least-used 4"), std::string::npos);
  a.prune_least_used = 1;
  a.calibration = calibration(d, {{"0", {1, 1, 1, 1}}, {"1", {1, 1, 1}}, {"2", {1, 1, 1, 1}}});
  EXPECT_NE(error_of([&] { make_routing(a, model(), 16); }).find("layer 1"), std::string::npos);
  write_json_file(d.file("bad.json"), Json{{"bits_per_byte", 2.0}});
  a.calibration = d.file("bad.json");
  EXPECT_NE(error_of([&] { make_routing(a, model(), 16); }).find("expert_counts"), std::string::npos);
  a.prune_least_used = 3;
  a.mask = "3";
  a.calibration = calibration(d, {{"0", {1, 2, 3, 4}}, {"1", {1, 2, 3, 4}}, {"2", {1, 2, 3, 4}}});
  EXPECT_NE(error_of([&] { make_routing(a, model(), 16); }).find("no expert left"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
