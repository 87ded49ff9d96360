// The simulated plant charges test-time adaptation (plant/sim_plant.h charge_adaptation): the charged passes run in
// the next step only, after the window's work, over the window's own work once (scale 1, not per stream) — a forward
// as that work, a backward as that work over twice the tokens; the step's joules and busy time include them and
// adapt_joules / adapt_seconds tell them apart (joules above idle: the step without them costs joules − adapt_joules).
#include <gtest/gtest.h>

#include "energy/sim_gpu.h"
#include "plant/sim_plant.h"

namespace wattmoe {
namespace {

TEST(SimPlantAdapt, ChargedPassesRunInTheNextStepOnly) {
  PlantShape shape;
  shape.expert = {2048, 1024, 2, 2, 3};
  shape.streams = 8, shape.period_s = 0.05;
  const std::vector<std::vector<int64_t>> counts = {{40, 0, 24, 64}, {}, {10, 10, 10, 98}};
  SimulatedPlant plain(SimGpuParams{}, shape), adapted(SimGpuParams{}, shape);
  EXPECT_TRUE(adapted.prices_adaptation());

  const PlantStep a1 = plain.step(counts, 64, 1.0);
  adapted.charge_adaptation(counts, 64, 1, 2);
  const PlantStep b1 = adapted.step(counts, 64, 1.0);
  EXPECT_EQ(a1.adapt_joules, 0.0);
  EXPECT_GT(b1.adapt_joules, 0.0);
  EXPECT_NEAR(b1.busy_seconds, a1.busy_seconds + b1.adapt_seconds, 1e-12);
  EXPECT_DOUBLE_EQ(b1.seconds, a1.seconds);  // both fit in the period
  // The adaptation's busy time replaces idle time: adapt_joules is what it added to the step.
  EXPECT_NEAR(b1.joules - a1.joules, b1.adapt_joules, 1e-9);

  // Priced as one forward of the window's own work at scale 1 and two backwards (twice the tokens, weights once).
  SimulatedGpu gpu;
  const double e0 = gpu.true_energy_j();
  double t = run_step_work(gpu, shape, counts, 64, 1.0);
  for (int i = 0; i < 2; ++i) t += run_step_work(gpu, shape, counts, 128, 2.0);
  EXPECT_NEAR(b1.adapt_seconds, t, 1e-12);
  const double j = gpu.true_energy_j() - e0 - SimGpuParams{}.idle_w * t;
  EXPECT_NEAR(b1.adapt_joules, j, 1e-9 * j);

  const PlantStep a2 = plain.step(counts, 64, 1.0), b2 = adapted.step(counts, 64, 1.0);
  EXPECT_EQ(b2.adapt_joules, 0.0) << "a charge is spent by one step";
  EXPECT_NEAR(b2.joules, a2.joules, 1e-9 * a2.joules);
  EXPECT_EQ(adapted.step_extras(b1).value("sim_adapt_j", -1.0), b1.adapt_joules);
}

}  // namespace
}  // namespace wattmoe
