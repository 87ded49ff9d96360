// StepEnergy's windows on the simulated GPU: steps in a row whose windows are carried from one step's end to the next
// (carry_on), a carried window no step followed (drop_carried), and close() with one open. On the simulated GPU time
// moves only inside steps, so every step's energy is its own work however its window was opened, and the steps add
// up to the outer window exactly.
#include "serve/step_energy.h"

#include <gtest/gtest.h>

#include <vector>

#include "../moe/model_gradcheck.h"

namespace wattmoe {
namespace {

TEST(StepEnergy, CarriedWindowsBillEachStepAndAddUpToTheTotal) {
  const ModelConfig c = test::mixtral_config(2);
  ServeEnergyOptions o;
  o.sim_period_s = 0.01;  // deterministic steps of 10 ms
  StepEnergy e(o, "sim", c, "");
  std::vector<std::vector<int64_t>> counts(size_t(c.num_layers), std::vector<int64_t>(size_t(c.num_experts), 1));
  std::vector<size_t> ids;
  e.begin(), ids.push_back(e.end(counts, 4));
  e.carry_on();  // requests in flight: the next window opens now
  e.begin(), ids.push_back(e.end(counts, 4));
  e.carry_on(), e.drop_carried();  // ... but no step followed
  e.begin(), ids.push_back(e.end(counts, 4));
  e.carry_on();  // open when the server closes
  double sum = 0;
  for (size_t id : ids) {
    const StepReading r = e.take(id);
    EXPECT_TRUE(r.complete);
    EXPECT_NEAR(r.seconds, 0.01, 1e-9);
    EXPECT_GT(r.joules, 0);
    sum += r.joules;
  }
  EXPECT_GT(ids[2], ids[1] + 1);  // the dropped window took an id between them
  const std::optional<WindowResult> outer = e.close();
  ASSERT_TRUE(outer.has_value());
  EXPECT_NEAR(outer->joules, sum, 1e-9 * sum);
  EXPECT_NEAR(outer->seconds, 0.03, 1e-9);
}

}  // namespace
}  // namespace wattmoe
