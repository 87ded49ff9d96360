// Theoretical occupancy from launch records (energy/occupancy.h), checked against hand-worked cases of CUDA's
// occupancy rules on an H100's limits (the gpu test compares the same function with the CUDA runtime's answer), the
// GPU-time-weighted summary of a block's kernels, and kernel names as readers want them.
#include "energy/occupancy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

SmLimits h100() { return energy_test::h100_limits(); }

KernelLaunch launch(int threads, int regs, int64_t dynamic_smem = 0, int64_t grid = 1 << 20, double seconds = 0) {
  return {.name = std::string("k"), .grid = grid, .threads = threads, .regs_per_thread = regs,
          .dynamic_smem = dynamic_smem, .seconds = seconds};
}

TEST(Occupancy, WarpsLimitAFullyOccupiedKernel) {
  // 8 warps a CTA: 64 / 8 = 8 CTAs by warps; 32 regs → 1024 a warp, 16 warps a sub-partition → 64 / 8 = 8 by
  // registers (a tie: warps is named first); 1 KiB reserved smem → 228; 32 CTAs.
  const Occupancy o = theoretical_occupancy(h100(), launch(256, 32));
  EXPECT_EQ(o.warps_per_block, 8);
  EXPECT_EQ(o.limit_warps, 8);
  EXPECT_EQ(o.limit_registers, 8);
  EXPECT_EQ(o.limit_shared, 228);
  EXPECT_EQ(o.limit_blocks, 32);
  EXPECT_EQ(o.blocks_per_sm, 8);
  EXPECT_EQ(o.limiter, "warps");
  EXPECT_DOUBLE_EQ(o.theoretical, 1.0);
}

TEST(Occupancy, RegistersAreAllocatedPerSubPartition) {
  // 168 regs: 5376 a warp (21 units of 256); 16384 / 5376 = 3 warps per sub-partition → 12 warps → 3 CTAs of 4.
  Occupancy o = theoretical_occupancy(h100(), launch(128, 168));
  EXPECT_EQ(o.limit_registers, 3);
  EXPECT_EQ(o.blocks_per_sm, 3);
  EXPECT_EQ(o.limiter, "registers");
  EXPECT_DOUBLE_EQ(o.theoretical, 12.0 / 64);
  // 200 regs, 3 warps a CTA: 6400 a warp, 2 per sub-partition → 8 warps → 2 CTAs (the whole register file would
  // suggest 10 warps and 3 CTAs; the sub-partitions do not allow it).
  o = theoretical_occupancy(h100(), launch(96, 200));
  EXPECT_EQ(o.limit_registers, 2);
  EXPECT_DOUBLE_EQ(o.theoretical, 6.0 / 64);
  // Rounded up to the allocation unit: 33 regs → 1056 → 1280 a warp; 16384 / 1280 = 12 → 48 warps → 6 CTAs of 8.
  o = theoretical_occupancy(h100(), launch(256, 33));
  EXPECT_EQ(o.limit_registers, 6);
  // Over the per-thread maximum: nothing fits.
  o = theoretical_occupancy(h100(), launch(32, 256));
  EXPECT_EQ(o.blocks_per_sm, 0);
  EXPECT_EQ(o.limiter, "registers");
}

TEST(Occupancy, SharedMemoryCountsTheReservedKiBAndRoundsToItsUnit) {
  // 100 KiB dynamic + 1 KiB reserved = 103424 bytes; 233472 / 103424 = 2 CTAs of 8 warps.
  Occupancy o = theoretical_occupancy(h100(), launch(256, 32, 102400));
  EXPECT_EQ(o.limit_shared, 2);
  EXPECT_EQ(o.limiter, "shared memory");
  EXPECT_DOUBLE_EQ(o.theoretical, 16.0 / 64);
  // Rounded up to whole 128-byte units: 45670 + 1024 = 46694 bytes would fit 5 times, but a CTA takes 46720.
  o = theoretical_occupancy(h100(), launch(64, 32, 45670));
  EXPECT_EQ(o.limit_shared, 4);
  // Static and dynamic add up.
  KernelLaunch k = launch(64, 32, 40 * 1024);
  k.static_smem = 40 * 1024;
  EXPECT_EQ(theoretical_occupancy(h100(), k).limit_shared, 2);  // 82944 a CTA
  // More than a CTA may opt in to: nothing fits.
  o = theoretical_occupancy(h100(), launch(256, 32, 232449));
  EXPECT_EQ(o.blocks_per_sm, 0);
  EXPECT_EQ(o.limiter, "shared memory");
  EXPECT_EQ(o.theoretical, 0);
  EXPECT_EQ(o.resident, 0);
  EXPECT_EQ(o.waves, 0);
}

TEST(Occupancy, SmallCtasHitTheCtaLimitAndBigOnesTheThreadLimit) {
  Occupancy o = theoretical_occupancy(h100(), launch(32, 16));
  EXPECT_EQ(o.blocks_per_sm, 32);
  EXPECT_EQ(o.limiter, "blocks");
  EXPECT_DOUBLE_EQ(o.theoretical, 0.5);
  o = theoretical_occupancy(h100(), launch(1025, 16));
  EXPECT_EQ(o.blocks_per_sm, 0);
  EXPECT_EQ(o.limiter, "warps");
  // 1000 threads use 32 warps (the last one partly).
  o = theoretical_occupancy(h100(), launch(1000, 16));
  EXPECT_EQ(o.warps_per_block, 32);
  EXPECT_EQ(o.blocks_per_sm, 2);
}

TEST(Occupancy, SmallGridsCannotFillTheGpu) {
  // 8 CTAs an SM, 132 SMs: one wave is 1056 CTAs.
  Occupancy o = theoretical_occupancy(h100(), launch(256, 32, 0, 66));
  EXPECT_DOUBLE_EQ(o.theoretical, 1.0);
  EXPECT_DOUBLE_EQ(o.waves, 66.0 / 1056);
  EXPECT_DOUBLE_EQ(o.resident, 66.0 * 8 / (132 * 64));
  o = theoretical_occupancy(h100(), launch(256, 32, 0, 2112));
  EXPECT_DOUBLE_EQ(o.waves, 2.0);
  EXPECT_DOUBLE_EQ(o.resident, 1.0);
  // One CTA (a serial kernel): one SM of 132, 8 warps of 64.
  o = theoretical_occupancy(h100(), launch(256, 32, 0, 1));
  EXPECT_DOUBLE_EQ(o.resident, 8.0 / (132 * 64));
}

TEST(Occupancy, BadLimitsAndLaunchesNameTheField) {
  SmLimits s = h100();
  s.sm_count = 0;
  std::string e = error_of([&] { theoretical_occupancy(s, launch(32, 16)); });
  EXPECT_TRUE(has(e, "sm_count 0")) << e;
  s = h100();
  s.max_threads_per_sm = 16;
  e = error_of([&] { theoretical_occupancy(s, launch(32, 16)); });
  EXPECT_TRUE(has(e, "max_threads_per_sm 16")) << e;
  e = error_of([&] { theoretical_occupancy(h100(), launch(0, 16)); });
  EXPECT_TRUE(has(e, "at least one")) << e;
  e = error_of([&] { theoretical_occupancy(h100(), launch(32, -1)); });
  EXPECT_TRUE(has(e, "registers -1")) << e;
}

TEST(LaunchSummary, WeighsKernelsByGpuTimePerCall) {
  KernelLaunch a = launch(256, 32, 0, 1 << 20, 3e-6);  // occupancy 1
  a.name = "gemm";
  KernelLaunch b = launch(128, 168, 0, 1 << 20, 1e-6);  // occupancy 12/64
  b.name = "route";
  b.static_smem = 4096;
  const LaunchSummary l = summarise_launches(h100(), {a, b, a, b}, 2);  // two calls of the block
  EXPECT_DOUBLE_EQ(l.kernels_per_call, 2);
  EXPECT_DOUBLE_EQ(l.kernel_seconds_per_call, 4e-6);
  EXPECT_NEAR(l.theoretical, 0.75 * 1.0 + 0.25 * 12.0 / 64, 1e-12);
  EXPECT_EQ(l.max_regs_per_thread, 168);
  EXPECT_EQ(l.max_smem_per_block, 4096);
  EXPECT_EQ(l.dominant.name, "gemm");
  EXPECT_NEAR(l.dominant_share, 0.75, 1e-12);
  EXPECT_NEAR(l.dominant.seconds, 3e-6, 1e-18);
  EXPECT_EQ(l.dominant_occupancy.limiter, "warps");
  // Kernels the clock could not time weigh equally.
  a.seconds = b.seconds = 0;
  EXPECT_NEAR(summarise_launches(h100(), {a, b}, 1).theoretical, 0.5 * 1.0 + 0.5 * 12.0 / 64, 1e-12);
  std::string e = error_of([&] { summarise_launches(h100(), {}, 1); });
  EXPECT_TRUE(has(e, "no kernel launches")) << e;
  e = error_of([&] { summarise_launches(h100(), {a}, 0); });
  EXPECT_TRUE(has(e, "calls 0")) << e;
}

TEST(KernelName, DemangledWithoutReturnTypeScopeOrParameters) {
  EXPECT_EQ(kernel_base_name("_Z9my_kernelPfi"), "my_kernel");
  EXPECT_EQ(kernel_base_name("_ZN7wattmoe4cuda12_GLOBAL__N_19flash_fwdILi64EEEvPKf"), "flash_fwd<64>");
  EXPECT_EQ(kernel_base_name("void wattmoe::cuda::(anonymous namespace)::rope<1, 2>(float const*, int)"), "rope<1, 2>");
  EXPECT_EQ(kernel_base_name("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64"),
            "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64");
  EXPECT_EQ(kernel_base_name(""), "");
}

}  // namespace
}  // namespace wattmoe
