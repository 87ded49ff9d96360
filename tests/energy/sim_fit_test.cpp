// The simulated GPU with the constants fitted on an H200 (scripts/device/sim_h200.json, from `wattmoe profile
// --fit-hardware`, docs/energy.md) against what that H200 measured for a whole Mixtral-shaped MoE layer (our
// MoeLayerCuda, CUDA-graph replays, energy counter, 2026-11-26): the simulator must reproduce the measured energy
// and time per call within 25% across token counts, including the power-capped T = 4096. (At T = 512 it is 23%
// low in both: its roofline takes max(compute, memory) as if they overlapped perfectly, and the real layer, between
// the two regimes, does not. T = 1 is within 2%, T = 4096 12% low.)
#include <gtest/gtest.h>

#include "../test_util.h"
#include "energy/sim_gpu.h"
#include "energy/sim_params.h"

namespace wattmoe {
namespace {

struct LayerPoint {
  int tokens, active_experts;
  double seconds, joules;  // measured per call (docs/energy.md, "Measured (H200 ...)")
};

Work mixtral_layer(int T, int active) {
  const double H = 4096, I = 14336, E = 8, k = 2;
  Work w;
  w.flops = 2 * 3 * H * I * T * k + 2 * H * E * T;
  w.bytes = active * 3 * H * I * 2 + E * H * 2 + T * (2 * H + 2 * I * k + 2 * H * k) * 2.0;
  return w;
}

TEST(SimFit, FittedH200ReproducesTheMeasuredMoeLayer) {
  const SimGpuParams p = load_sim_params(test::source_path("scripts/device/sim_h200.json"));
  for (const LayerPoint& m : {LayerPoint{1, 2, 0.217e-3, 0.125}, LayerPoint{512, 8, 1.23e-3, 0.85},
                              LayerPoint{4096, 8, 5.6e-3, 3.9}}) {
    SimulatedGpu gpu(p);
    gpu.run(mixtral_layer(m.tokens, m.active_experts));
    const SimRunInfo& r = gpu.last_run();
    RecordProperty("T" + std::to_string(m.tokens) + "_joules_ratio", std::to_string(r.joules / m.joules));
    EXPECT_NEAR(r.joules / m.joules, 1.0, 0.25) << "T = " << m.tokens << ": " << r.joules << " J simulated";
    EXPECT_NEAR(r.seconds / m.seconds, 1.0, 0.25) << "T = " << m.tokens << ": " << r.seconds << " s simulated";
  }
}

TEST(SimFit, ActivePowerIsValidated) {
  SimGpuParams p;
  p.active_w = -1;
  EXPECT_NE(test::error_of([&] { validate(p); }).find("active_w"), std::string::npos);
  p.active_w = 700;
  EXPECT_NE(test::error_of([&] { validate(p); }).find("power_limit_w"), std::string::npos);
}

}  // namespace
}  // namespace wattmoe
