// Launch records (ops/cuda/kernel_trace.h) on the device: CUPTI sees each probe launch with the shape it was given,
// the occupancy calculator (energy/occupancy.h) gives the CUDA runtime's own CTAs-per-SM answer for it, and a real
// block's kernels are recorded the same whether launched plainly or replayed from a CUDA graph.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "energy/occupancy.h"
#include "occupancy_probe.h"
#include "ops/cuda/kernel_trace.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe {
namespace {

using test::Probe;

TEST(KernelTrace, DeviceLimitsAreRead) {
  const SmLimits s = cuda_sm_limits();
  EXPECT_GE(s.sm_count, 1);
  EXPECT_EQ(s.warp_size, 32);
  EXPECT_GE(s.max_threads_per_sm, 1024);
  EXPECT_GT(s.smem_per_block_optin, 48 * 1024);
  EXPECT_FALSE(s.device.empty());
}

TEST(KernelTrace, CalculatorAgreesWithTheCudaRuntimeOnProbeLaunches) {
  const SmLimits s = cuda_sm_limits();
  KernelTracer tracer;
  struct Case {
    Probe p;
    int grid, threads;
    size_t smem;
    const char* name;
  };
  const std::vector<Case> cases = {
      {Probe::kStaticSmem, 3, 64, 0, "probe_static_smem"},       {Probe::kStaticSmem, 500, 256, 0, "probe_static_smem"},
      {Probe::kStaticSmem, 7, 1024, 0, "probe_static_smem"},     {Probe::kStaticSmem, 9, 96, 0, "probe_static_smem"},
      {Probe::kDynamicSmem, 11, 256, 48 << 10, "probe_dynamic_smem"},
      {Probe::kDynamicSmem, 5, 128, 100 << 10, "probe_dynamic_smem"},
      {Probe::kDynamicSmem, 2, 32, 200 << 10, "probe_dynamic_smem"},
      {Probe::kDynamicSmem, 13, 640, (45 << 10) + 1, "probe_dynamic_smem"},
      {Probe::kRegisters, 17, 256, 0, "probe_registers"},        {Probe::kRegisters, 4, 96, 0, "probe_registers"},
      {Probe::kRegisters, 1, 512, 0, "probe_registers"}};
  DeviceBuffer out(size_t(500) * 1024 * sizeof(float));
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " " + std::to_string(c.threads) + " threads, " + std::to_string(c.smem) +
                 " B dynamic");
    int api = -1;
    const std::vector<KernelLaunch> k =
        tracer.trace([&] { api = test::launch_probe(c.p, c.grid, c.threads, c.smem, static_cast<float*>(out.get())); });
    ASSERT_EQ(k.size(), 1u);
    EXPECT_EQ(k[0].name, c.name);
    EXPECT_EQ(k[0].grid, c.grid);
    EXPECT_EQ(k[0].threads, c.threads);
    EXPECT_EQ(k[0].dynamic_smem, int64_t(c.smem));
    EXPECT_EQ(k[0].static_smem, c.p == Probe::kStaticSmem ? 4096 : 0);
    EXPECT_GT(k[0].regs_per_thread, 0);
    EXPECT_GT(k[0].seconds, 0);
    EXPECT_EQ(k[0].cluster, 1);
    const Occupancy o = theoretical_occupancy(s, k[0]);
    EXPECT_EQ(o.blocks_per_sm, api) << "limiter " << o.limiter << ", regs " << k[0].regs_per_thread;
  }
  // Nothing launched, nothing recorded; a second tracer is refused while this one lives.
  EXPECT_TRUE(tracer.trace([] {}).empty());
  EXPECT_THROW(KernelTracer(), Error);
}

TEST(KernelTrace, AGraphReplayRecordsEachCallsKernels) {
  const int H = 256, I = 512, T = 64, calls = 3;
  DeviceBuffer gate(size_t(I) * H * 2), up(size_t(I) * H * 2), down(size_t(H) * I * 2), x(size_t(T) * H * 2),
      y(size_t(T) * H * 2);
  fill_uniform_bf16(gate.get(), size_t(I) * H, 0.05, 1);
  fill_uniform_bf16(up.get(), size_t(I) * H, 0.05, 2);
  fill_uniform_bf16(down.get(), size_t(H) * I, 0.05, 3);
  fill_uniform_bf16(x.get(), size_t(T) * H, 1.0, 4);
  ExpertBlockCuda block(H, I, T);
  CudaStream stream;
  auto work = [&](cudaStream_t s) { block.run(gate.get(), up.get(), down.get(), x.get(), y.get(), T, s); };
  work(stream.get());  // libraries' first-use work outside the traces
  cuda_synchronize();
  KernelTracer tracer;
  const std::vector<KernelLaunch> plain = tracer.trace([&] { work(stream.get()); });
  ASSERT_FALSE(plain.empty());
  CudaGraphRun graph(work, calls, stream.get());
  const std::vector<KernelLaunch> replay = tracer.trace([&] { graph.launch(); });
  ASSERT_EQ(replay.size(), plain.size() * calls);
  for (size_t i = 0; i < replay.size(); ++i) {
    EXPECT_EQ(replay[i].name, plain[i % plain.size()].name) << i;
    EXPECT_EQ(replay[i].grid, plain[i % plain.size()].grid) << i;
    EXPECT_EQ(replay[i].name.find('('), std::string::npos) << replay[i].name;
  }
  const LaunchSummary l = summarise_launches(cuda_sm_limits(), replay, calls);
  EXPECT_DOUBLE_EQ(l.kernels_per_call, double(plain.size()));
  EXPECT_GT(l.kernel_seconds_per_call, 0);
  EXPECT_GT(l.theoretical, 0);
  EXPECT_LE(l.theoretical, 1);
  EXPECT_LE(l.resident, l.theoretical + 1e-12);
}

}  // namespace
}  // namespace wattmoe
