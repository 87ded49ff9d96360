// Occupancy of GPU kernels from their launch records: how many CTAs of a kernel one SM can hold at once, what stops it
// holding more, and what that means for a block of work made of several kernels. Host-only arithmetic (no CUDA), so
// it is tested on CI; the launch records come from a tracer on the device (ops/cuda/kernel_trace.h).
//
// theoretical_occupancy() follows the rules of CUDA's own occupancy calculator (cudaOccupancyMaxActiveBlocksPer-
// Multiprocessor, default carveout, partitioned global caching off) for compute capability 8.0 and newer:
//   warps       max_warps_per_sm / ceil(threads / warp)
//   registers   per warp ceil(regs · warp / reg_unit) · reg_unit registers, allocated in each of the SM's
//               sub-partitions: (regs_per_sm / sub_partitions / per-warp) · sub_partitions warps, / warps per CTA;
//               none if a CTA needs more than regs_per_block (its warps rounded up to the sub-partitions)
//   shared mem  smem_per_sm / ceil(static + dynamic + reserved_per_block, smem_unit); none if a CTA needs more than
//               smem_per_block_optin + reserved_per_block
//   CTAs        max_blocks_per_sm
// and occupancy = resident warps / max_warps_per_sm. The gpu test compares it with the CUDA runtime's answer.
// `resident` adds the grid: a grid smaller than one full wave (CTAs per SM × SMs) cannot fill the GPU, so it is the
// resident warps of the first wave averaged over all SMs, the most an achieved occupancy can reach.
//
// Cluster launches (Hopper) are priced per CTA like any other; the record keeps the cluster size for the reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wattmoe {

// One device's per-SM limits (cudaDeviceProp's names in the comments).
struct SmLimits {
  int sm_count = 0;                   // multiProcessorCount
  int warp_size = 32;                 // warpSize
  int max_threads_per_sm = 0;         // maxThreadsPerMultiProcessor
  int max_threads_per_block = 0;      // maxThreadsPerBlock
  int max_blocks_per_sm = 0;          // maxBlocksPerMultiProcessor
  int regs_per_sm = 0;                // regsPerMultiprocessor
  int regs_per_block = 0;             // regsPerBlock
  int max_regs_per_thread = 255;      // the ISA's limit (255 since sm_30)
  int reg_alloc_unit = 256;           // registers are allocated per warp in units of this many (sm_70+)
  int sub_partitions = 4;             // an SM's schedulers, each with a quarter of the register file (sm_70+)
  int64_t smem_per_sm = 0;            // sharedMemPerMultiprocessor (the largest carveout)
  int64_t smem_per_block_optin = 0;   // sharedMemPerBlockOptin
  int64_t smem_reserved_per_block = 0;  // reservedSharedMemPerBlock (the driver's 1 KiB on sm_80+)
  int smem_alloc_unit = 128;          // shared memory is allocated per CTA in units of this many bytes (sm_80+)
  std::string device;                 // e.g. "NVIDIA H100 80GB HBM3 (sm_90)"
};
// Error naming the field when a limit is missing or impossible.
void validate(const SmLimits& s);

// One kernel launch as a tracer recorded it.
struct KernelLaunch {
  std::string name;                 // demangled where the tracer could, else as recorded
  int64_t grid = 0;                 // CTAs (x·y·z)
  int threads = 0;                  // per CTA (x·y·z)
  int regs_per_thread = 0;
  int64_t static_smem = 0, dynamic_smem = 0;  // bytes per CTA
  int cluster = 1;                  // CTAs per cluster (1 without clusters)
  double seconds = 0;               // on the GPU, start to end
};

struct Occupancy {
  int blocks_per_sm = 0;            // resident CTAs per SM (0: the launch cannot fit on an SM)
  int warps_per_block = 0;
  int limit_warps = 0, limit_registers = 0, limit_shared = 0, limit_blocks = 0;  // CTAs per SM each would allow
  std::string limiter;              // "warps", "registers", "shared memory" or "blocks" (ties: that order)
  double theoretical = 0;           // resident warps / max warps per SM, in [0, 1]
  double resident = 0;              // first wave's warps over all SMs / (SMs × max warps): ≤ theoretical
  double waves = 0;                 // grid / (blocks_per_sm × SMs)
};
Occupancy theoretical_occupancy(const SmLimits& s, const KernelLaunch& k);

// The kernels of one call of a block (a run's records divided by its calls), weighted by their GPU time.
struct LaunchSummary {
  double kernels_per_call = 0;
  double kernel_seconds_per_call = 0;  // Σ kernel durations / calls (kernels that overlap count twice)
  double theoretical = 0, resident = 0;  // GPU-time-weighted means over the kernels
  int max_regs_per_thread = 0;
  int64_t max_smem_per_block = 0;     // static + dynamic, the largest CTA
  KernelLaunch dominant;              // the kernel (by name and launch shape) with the most GPU time
  Occupancy dominant_occupancy;
  double dominant_share = 0;          // its share of the kernel time
};
// Error when calls < 1 or the records are empty (a block that launched nothing has no occupancy).
LaunchSummary summarise_launches(const SmLimits& s, const std::vector<KernelLaunch>& records, int calls);

// A kernel's name as a reader wants it: demangled (an Itanium-mangled name is demangled first), without return type,
// namespaces or parameter list, template arguments kept: "_ZN7wattmoe4cuda12_GLOBAL__N_19flash_fwdILi64EEEvPKf" →
// "flash_fwd<64>". Names that are not mangled (cuBLAS's "sm90_xmma_gemm_…") come back as they are.
std::string kernel_base_name(const std::string& name);

}  // namespace wattmoe
