// StepEnergy's windows on the simulated GPU: steps in a row whose windows are carried from one step's end to the next
// (carry_on), a carried window no step followed (drop_carried), and close() with one open. On the simulated GPU time
// moves only inside steps, so every step's energy is its own work however its window was opened, and the steps add
// up to the outer window exactly. IdleCarry: when the server keeps a window open with no request in flight.
#include "serve/step_energy.h"

#include <gtest/gtest.h>

#include <chrono>
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

// IdleCarry: the window stays open while requests are in flight, and with none for bill_idle_s after the last step;
// then it closes and stays closed until a step runs again; 0 s keeps no idle window at all.
TEST(IdleCarry, KeepsTheWindowForTheIdleGapThenDropsItUntilTheNextStep) {
  using C = IdleCarry::Clock;
  const auto at = [t0 = C::now()](double s) {
    return t0 + std::chrono::duration_cast<C::duration>(std::chrono::duration<double>(s));
  };
  IdleCarry k(1.0);
  EXPECT_TRUE(k.keep(true, true, at(0)));  // a step, requests still running
  EXPECT_FALSE(k.deadline().has_value());
  EXPECT_TRUE(k.keep(true, false, at(0.1)));  // the last request left with this step: idle from here
  ASSERT_TRUE(k.deadline().has_value());
  EXPECT_EQ(*k.deadline(), at(1.1));
  EXPECT_TRUE(k.keep(false, false, at(0.6)));  // a loop turn without a step, inside the gap
  EXPECT_EQ(*k.deadline(), at(1.1));           // the deadline does not move
  EXPECT_FALSE(k.keep(false, false, at(1.1)));  // the wait ended at the deadline: dropped
  EXPECT_FALSE(k.deadline().has_value());
  EXPECT_FALSE(k.keep(false, false, at(5)));  // long idle: never reopened by loop turns
  EXPECT_TRUE(k.keep(false, true, at(6)));    // a request in flight (admitted, its step not yet run)
  EXPECT_TRUE(k.keep(true, false, at(6.2)));  // a step: a new idle gap of its own
  EXPECT_EQ(*k.deadline(), at(7.2));
  IdleCarry none(0.0);
  EXPECT_TRUE(none.keep(true, true, at(0)));
  EXPECT_FALSE(none.keep(true, false, at(0)));  // idle time billed to nobody
  EXPECT_FALSE(none.deadline().has_value());
}

}  // namespace
}  // namespace wattmoe
