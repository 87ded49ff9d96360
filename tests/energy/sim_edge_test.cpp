// The edge profile of the simulated GPU (scripts/experiments/sim_edge.json, docs/energy.md "An edge profile"): it
// loads through sim_params_from_json, and behaves like a 15–60 W module with ~200 GB/s of shared LPDDR5 — a few
// watts idle, a large GEMM held at the 60 W limit, weight streaming at the memory's rate drawing about 15 W — so
// that a 15 W budget (scripts/experiments/sim_edge.py) sits between the cheapest and the dearest work.
#include <gtest/gtest.h>

#include "../test_util.h"
#include "energy/sim_gpu.h"
#include "energy/sim_params.h"

namespace wattmoe {
namespace {

// load_sim_params: parse_json_file, then sim_params_from_json (unknown fields and bad values are errors).
SimGpuParams edge() { return load_sim_params(test::source_path("scripts/experiments/sim_edge.json")); }

TEST(SimEdge, LoadsAndRoundTrips) {
  const SimGpuParams p = edge();
  EXPECT_EQ(p.name, "sim-edge-orin-class");
  EXPECT_EQ(sim_params_to_json(sim_params_from_json(sim_params_to_json(p), "round trip")), sim_params_to_json(p));
  EXPECT_LE(p.idle_w, 10);
  EXPECT_EQ(p.power_limit_w, 60);
  EXPECT_EQ(p.mem_total_bytes, uint64_t(64) << 30);
}

TEST(SimEdge, LargeGemmIsPowerCappedAt60W) {
  SimulatedGpu gpu(edge());
  const double n = 4096;
  gpu.run({2 * n * n * n, 3 * n * n * 2, "gemm"});
  const SimRunInfo& r = gpu.last_run();
  EXPECT_NEAR(r.joules / r.seconds, 60, 0.5);
  EXPECT_TRUE(r.reasons & ClockEvent::kSwPowerCap);
  EXPECT_LT(r.min_sm_clock_mhz, 1301);
}

TEST(SimEdge, StreamingWeightsRunsAtTheMemoryRateNear15W) {
  SimulatedGpu gpu(edge());
  const double bytes = 1e9;  // 1 GB of weights, one FLOP per byte: memory-bound
  gpu.run({bytes, bytes, "stream"});
  const SimRunInfo& r = gpu.last_run();
  EXPECT_NEAR(bytes / r.seconds, 2.048e11, 0.01 * 2.048e11);
  EXPECT_GT(r.joules / r.seconds, 12);
  EXPECT_LT(r.joules / r.seconds, 18);
  EXPECT_FALSE(r.reasons & ClockEvent::kSwPowerCap);
}

}  // namespace
}  // namespace wattmoe
