// Probe kernels for tests/gpu/kernel_trace_test.cpp: three kernels whose launch shapes the test picks (static shared
// memory, dynamic shared memory, many registers), launched once, with the CUDA runtime's own occupancy answer for
// that launch, so the calculator in energy/occupancy.h can be compared with it on the device.
#pragma once
#include <cstddef>

namespace wattmoe::test {

enum class Probe { kStaticSmem, kDynamicSmem, kRegisters };

// Launches the probe once (grid CTAs of `threads`, `dynamic_smem` bytes; `out` holds grid·threads floats) on the
// default stream and returns cudaOccupancyMaxActiveBlocksPerMultiprocessor for the same kernel and launch. Error on
// a CUDA failure.
int launch_probe(Probe p, int grid, int threads, size_t dynamic_smem, float* out);

}  // namespace wattmoe::test
