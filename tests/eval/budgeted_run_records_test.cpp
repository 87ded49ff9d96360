// run_budgeted's per-window records (eval/budgeted_run.h WindowRecordFn): each is the very object --log writes on its
// line, in window order, and a consumer returning false ends the run after that window without "interrupted".
#include <gtest/gtest.h>

#include <fstream>

#include "../adapt/adapt_test_util.h"
#include "../test_util.h"
#include "eval/budgeted_run.h"

namespace wattmoe::test {
namespace {

ModelWeights<float> tiny_weights() {
  const TinyModel t = tiny_model();
  ModelWeights<float> m;
  m.config = t.config, m.layout = ParamLayout::build(t.config), m.params = t.params;
  return m;
}

RunConfig budget_run() {
  RunConfig c;
  c.stream.seq = 16;
  c.budget.power_w = 300;
  c.routing.expert_shape = "4096x14336";
  return c;
}

TEST(BudgetedRunRecords, AreTheLogLines) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 6 + 1, m.config.vocab_size, 3);
  TempDir dir;
  RunConfig c = budget_run();
  c.log = dir.path() + "/run.jsonl";
  std::vector<std::string> records;
  const Json summary = run_budgeted(c, m, s, [&](const Json& r) {
    records.push_back(r.dump());
    return true;
  });
  std::ifstream log(c.log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(line);
  EXPECT_EQ(records, lines);
  EXPECT_EQ(int64_t(records.size()), summary["windows"].get<int64_t>());
  EXPECT_EQ(records.size(), 6u);
}

TEST(BudgetedRunRecords, FalseEndsTheRunAfterThatWindow) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 6 + 1, m.config.vocab_size, 3);
  int seen = 0;
  const Json summary = run_budgeted(budget_run(), m, s, [&](const Json& r) {
    EXPECT_EQ(r["window"].get<int>(), seen);
    return ++seen < 2;
  });
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(summary["windows"].get<int64_t>(), 2);
  EXPECT_FALSE(summary.contains("interrupted"));
}

// --ladder-tier fp8: a budget knob control cannot hold takes the ladder to its tier level; the windows from there on
// run (and record) fp8 experts, and the summary counts the switch and its host time. (The plant's pricing of the
// tier: tests/plant/expert_tier_cost_test.cpp.)
TEST(BudgetedRunRecords, TheLadderTierSwitchesTheExpertsAndIsRecorded) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 24 + 1, m.config.vocab_size, 3);
  RunConfig c = budget_run();
  c.budget.power_w = 95, c.budget.ladder_dwell = 2, c.budget.ladder_tier = "fp8";
  std::vector<Json> records;
  const Json summary = run_budgeted(c, m, s, [&](const Json& r) {
    records.push_back(r);
    return true;
  });
  ASSERT_EQ(records.size(), 24u);
  EXPECT_EQ(records.front()["control"]["expert_tier"], "bf16");
  int first_fp8 = -1;  // a record's control is the decision its window ran with
  for (size_t i = 0; i < records.size() && first_fp8 < 0; ++i)
    if (records[i]["control"]["expert_tier"] == "fp8") first_fp8 = int(i);
  ASSERT_GT(first_fp8, 0) << "the ladder never reached its tier level";
  EXPECT_EQ(records[size_t(first_fp8)]["control"]["rung"], 0);  // the tier level is knob control
  const Json& ctl = summary["control"];
  EXPECT_EQ(ctl["ladder_tier"], "fp8");
  EXPECT_GE(ctl["tier_switches"].get<int64_t>(), 1);
  EXPECT_GE(ctl["tier_switch_s"].get<double>(), 0.0);
}

// The same with test-time training of LoRA adapters: the adapter's runner has the adapters' layout, so the experts'
// full-precision weights come from θ₀ in that layout (the loaded model's would be read at the wrong offsets), and the
// run after the switch scores what a run started at fp8 with the same adapted weights would: every bits/byte finite.
TEST(BudgetedRunRecords, TheLadderTierSwitchesUnderLoraAdaptation) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 24 + 1, m.config.vocab_size, 3);
  RunConfig c = budget_run();
  c.budget.power_w = 95, c.budget.ladder_dwell = 2, c.budget.ladder_tier = "fp8";
  c.ttt.enabled = true, c.ttt.groups = "router,norms,lora", c.ttt.adapter.lora_rank = 2;
  std::vector<Json> records;
  const Json summary = run_budgeted(c, m, s, [&](const Json& r) {
    records.push_back(r);
    return true;
  });
  ASSERT_EQ(records.size(), 24u);
  EXPECT_GE(summary["control"]["tier_switches"].get<int64_t>(), 1);
  EXPECT_EQ(records.back()["control"]["expert_tier"], "fp8");
  for (const Json& r : records) EXPECT_TRUE(std::isfinite(r["bits_per_token"].get<double>())) << r.dump();
}

// --control-policy budget: the controller moves a joule budget per layer-step (its range from the layer costs at a
// window's tokens), which starts unlimited (top-k) and becomes finite once the budget pushes.
TEST(BudgetedRunRecords, TheBudgetKnobRuns) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 12 + 1, m.config.vocab_size, 3);
  RunConfig c = budget_run();
  c.budget.power_w = 95, c.budget.control_policy = "budget";
  std::vector<Json> records;
  run_budgeted(c, m, s, [&](const Json& r) {
    records.push_back(r);
    return true;
  });
  ASSERT_EQ(records.size(), 12u);
  EXPECT_EQ(records.front()["control"]["policy"], "budget");
  EXPECT_EQ(records.front()["control"]["knobs"]["budget_j"], "inf");
  bool finite = false;
  for (const Json& r : records) finite = finite || r["control"]["knobs"]["budget_j"].is_number();
  EXPECT_TRUE(finite) << "the budget never became finite";
}

TEST(BudgetedRunRecords, TheLadderTierIsRefusedWhereItCannotRun) {
  const ModelWeights<float> m = tiny_weights();
  const TokenStream s = random_stream(16 * 2 + 1, m.config.vocab_size, 3);
  RunConfig c = budget_run();
  c.budget.ladder_tier = "fp8";
  c.runner.expert_precision = "int8";
  EXPECT_NE(error_of([&] { run_budgeted(c, m, s, {}); }).find("--ladder-tier fp8 with --expert-precision int8"),
            std::string::npos);
  c.runner.expert_precision = "bf16", c.budget.power_w = 0;
  EXPECT_NE(error_of([&] { run_budgeted(c, m, s, {}); }).find("--ladder-tier needs a budget"), std::string::npos);
  c.budget.power_w = 300, c.plant.name = "model";
  EXPECT_NE(error_of([&] { run_budgeted(c, m, s, {}); }).find("--ladder-tier with --plant model"), std::string::npos);
  c.plant.name = "sim", c.budget.ladder_tier = "bf16";
  EXPECT_NE(error_of([&] { run_budgeted(c, m, s, {}); }).find("--ladder-tier bf16"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe::test
