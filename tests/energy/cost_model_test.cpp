#include <gtest/gtest.h>

#include "energy/cost_analytic.h"
#include "energy/cost_table.h"
#include "energy/sim_gpu.h"
#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;
using energy_test::TempDir;
using energy_test::write_text;

// A Mixtral-shaped expert: H=4096, I=14336, bf16.
const ExpertShape kMixtral{4096, 14336, 2, 2, 3};

TEST(AnalyticCost, FixedPartDominatesDecodeAndMarginalPartPrefill) {
  AnalyticCostModel m = AnalyticCostModel::uniform(2, 8, kMixtral, HardwareCoeffs{});
  const double weights = 3.0 * 4096 * 14336 * 2;  // 352 MB read once per step
  ExpertCost d = m.expert_cost(0, 3, 1);
  EXPECT_NEAR(d.seconds.a, weights / 3.35e12 + 4e-6, 1e-9);
  EXPECT_GT(d.joules.a, 20 * d.joules.b);  // at T=1 the weight read is nearly everything
  // The tangent touches the exact roofline at the operating point.
  for (double t : {1.0, 64.0, 512.0, 4096.0}) {
    ExpertCost c = m.expert_cost(1, 0, t);
    EXPECT_NEAR(c.joules.at(t), m.exact_joules(1, 0, t), 1e-9 * m.exact_joules(1, 0, t)) << t;
    EXPECT_NEAR(c.seconds.at(t), m.exact_seconds(1, 0, t), 1e-12) << t;
  }
  // Past the ridge point time grows with tokens: the marginal cost includes static power for the FLOP time.
  ExpertCost p = m.expert_cost(0, 0, 4096);
  EXPECT_NEAR(p.seconds.b, 6.0 * 4096 * 14336 / 989e12, 1e-15);
  EXPECT_GT(p.joules.b, d.joules.b);
  EXPECT_EQ(m.joules(0, 0, 0), 0);  // an expert with no tokens costs nothing
}

TEST(AnalyticCost, MatchesTheSimulatorWhenUnthrottled) {
  SimGpuParams sp;
  sp.power_limit_w = 1e5;  // no cap: the analytic model assumes the max clock
  SimulatedGpu gpu(sp);
  AnalyticCostModel m = AnalyticCostModel::uniform(1, 4, kMixtral, HardwareCoeffs::from_sim(sp));
  for (double t : {1.0, 100.0, 3000.0}) {
    gpu.run(Work{m.flops(0, 0, t), m.bytes(0, 0, t), "expert"});
    EXPECT_NEAR(gpu.last_run().joules, m.exact_joules(0, 0, t), 1e-9 * gpu.last_run().joules) << t;
    EXPECT_NEAR(gpu.last_run().seconds, m.exact_seconds(0, 0, t), 1e-12) << t;
  }
}

TEST(AnalyticCost, ExpertsDifferByShapeAndPrecision) {
  ExpertShape fp8 = kMixtral;
  fp8.weight_bytes = 1;
  AnalyticCostModel m({{kMixtral, fp8}}, HardwareCoeffs{});
  EXPECT_LT(m.expert_cost(0, 1, 1).joules.a, m.expert_cost(0, 0, 1).joules.a);
  const ExpertCosts rc = m.routing_costs(0, 4);
  const std::vector<double> per_token_j = per_token_cost(rc, 4);  // b_e + a_e / 4
  ASSERT_EQ(per_token_j.size(), 2u);
  ExpertCost c = m.expert_cost(0, 0, 4);
  EXPECT_FLOAT_EQ(rc.fixed[0], float(c.joules.a));
  EXPECT_FLOAT_EQ(rc.per_token[0], float(c.joules.b));
  EXPECT_FLOAT_EQ(float(per_token_j[0]), float(c.joules.b + c.joules.a / 4));
  EXPECT_LT(per_token_j[1], per_token_j[0]);
  std::string e = error_of([&] { m.joules(0, 2, 1); });
  EXPECT_NE(e.find("expert 2 out of range [0, 2)"), std::string::npos) << e;
  e = error_of([&] { AnalyticCostModel({{ExpertShape{0, 10}}}, HardwareCoeffs{}); });
  EXPECT_NE(e.find("layer 0 expert 0: hidden, ffn"), std::string::npos) << e;
}

TEST(CostTable, SaveLoadRoundTrip) {
  TempDir dir;
  AnalyticCostModel a = AnalyticCostModel::uniform(3, 4, kMixtral, HardwareCoeffs{});
  save_cost_table(dir.file("costs.json"), a, 16, "sim-h100");
  ProfiledCostModel t = ProfiledCostModel::load(dir.file("costs.json"));
  EXPECT_EQ(t.device(), "sim-h100");
  ASSERT_EQ(t.num_layers(), 3);
  ASSERT_EQ(t.num_experts(2), 4);
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 4; ++e) {
      EXPECT_DOUBLE_EQ(t.joules(l, e, 16), a.joules(l, e, 16));
      EXPECT_DOUBLE_EQ(t.seconds(l, e, 16), a.seconds(l, e, 16));
    }
  EXPECT_DOUBLE_EQ(t.layer_joules(1, {0, 3, 0, 9}), t.joules(1, 1, 3) + t.joules(1, 3, 9));
}

TEST(CostTable, CorruptOrInconsistentTablesNameFileAndField) {
  TempDir dir;
  const std::string expert = R"({"a_j": 0.1, "b_j": 0.001, "a_s": 1e-4, "b_s": 1e-7, "spread": 0.05})";
  auto table = [&](const std::string& layers, const std::string& extra = "") {
    return R"({"format": "wattmoe.cost_table.v1", )" + extra + R"("layers": )" + layers + "}";
  };
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {table("[{\"experts\": [" + expert + ", {\"a_j\": 0.1, \"a_s\": 0, \"b_s\": 0}]}]"),
       "layers[0].experts[1].b_j: missing field"},
      {table("[{\"experts\": [{\"a_j\": 0.1, \"b_j\": -1, \"a_s\": 0, \"b_s\": 0}]}]"),
       "layers[0].experts[0].b_j: expected a number >= 0, got -1"},
      {table("[{\"experts\": [" + expert + "]}, {\"layer\": 5, \"experts\": [" + expert + "]}]"),
       "layers[1].layer: says layer 5 at position 1"},
      {table("[{\"experts\": [" + expert + "]}, {\"experts\": [" + expert + ", " + expert + "]}]", "\"num_experts\": 1, "),
       "layers[1].experts: has 2 experts but num_experts says 1"},
      {table("[{\"experts\": [" + expert + "]}]", "\"num_layers\": 2, "), "num_layers: says 2 but the layers array has 1"},
      {table("[{\"experts\": []}]"), "layers[0].experts: expected at least one expert"},
      {table("[{\"experts\": [{\"a_j\": 0.1, \"b_j\": 0, \"a_s\": 0, \"b_s\": 0, \"sprad\": 1}]}]"),
       "layers[0].experts[0].sprad: unknown field"},
      {table("[{\"experts\": [{\"a_j\": \"x\", \"b_j\": 0, \"a_s\": 0, \"b_s\": 0}]}]"),
       "layers[0].experts[0].a_j: expected a number"},
      {table("[{\"experts\": [{\"a_j\": 0.1, \"b_j\": 1e105, \"a_s\": 0, \"b_s\": 0}]}]"),  // a float's inf
       "layers[0].experts[0].b_j: 1e+105 (expected at most 1e+30)"},
      {R"({"format": "v0", "layers": []})", "format: expected \"wattmoe.cost_table.v1\""},
      {R"({"format": "wattmoe.cost_table.v1", "layers": [)", "malformed JSON"},
  };
  for (const Case& c : cases) {
    write_text(dir.file("costs.json"), c.text);
    std::string e = error_of([&] { ProfiledCostModel::load(dir.file("costs.json")); });
    EXPECT_NE(e.find("costs.json"), std::string::npos) << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << "want: " << c.expect << "\ngot:  " << e;
  }
}

}  // namespace
}  // namespace wattmoe
