// The kernels a piece of GPU work launches, with their launch shapes, read from CUPTI's activity records
// (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: grid, block, registers per thread, static and dynamic shared memory,
// cluster, start and end), and the current device's per-SM limits; energy/occupancy.h turns both into occupancy.
//
// CUPTI is loaded with dlopen (libcupti.so.<CUDA major>, then libcupti.so, then the toolkit's usual folders), so
// wattmoe runs where it is missing: the constructor throws an Error saying why, and callers report occupancy as not
// available. CUPTI also refuses a second subscriber: under Nsight Compute or Nsight Systems the constructor or trace()
// throws, naming CUPTI's error. Tracing is switched on only inside trace(); nothing is recorded, and no launch pays
// for it, at any other time. One tracer per process at a time (a second constructor throws).
//
// This header pulls in no CUDA header; the definitions exist only in the CUDA build.
#pragma once
#if !defined(WATTMOE_WITH_CUDA) || !WATTMOE_WITH_CUDA
#error "ops/cuda/kernel_trace.h needs the CUDA backend: configure with -DWATTMOE_CUDA=ON"
#endif

#include <functional>
#include <vector>

#include "energy/occupancy.h"

namespace wattmoe {

// The current device's limits (cudaDeviceGetAttribute), the device named as cuda_device_description() names it.
SmLimits cuda_sm_limits();

class KernelTracer {
 public:
  KernelTracer();  // Error: CUPTI missing, or its activity API refused
  ~KernelTracer();
  KernelTracer(const KernelTracer&) = delete;
  KernelTracer& operator=(const KernelTracer&) = delete;

  // Synchronises the device, records every kernel launched until `work` returns and the device is synchronised
  // again (any stream; kernels inside CUDA graphs included), in start order. Error if CUPTI dropped records.
  std::vector<KernelLaunch> trace(const std::function<void()>& work);
};

}  // namespace wattmoe
