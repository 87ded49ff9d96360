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

}  // namespace
}  // namespace wattmoe::test
