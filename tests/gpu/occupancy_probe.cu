#include "occupancy_probe.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace wattmoe::test {

namespace {

__global__ void probe_static_smem(float* out) {
  __shared__ float buf[1024];  // 4 KiB
  buf[threadIdx.x % 1024] = float(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = buf[(threadIdx.x + 1) % 1024];
}

__global__ void probe_dynamic_smem(float* out) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = dyn[(threadIdx.x + 1) % blockDim.x];
}

// Many values live at once, so the compiler keeps many registers.
__global__ void probe_registers(float* out) {
  constexpr int kLive = 48;
  float acc[kLive];
  const float seed = float(threadIdx.x + 1) * 1e-3f;
#pragma unroll
  for (int i = 0; i < kLive; ++i) acc[i] = seed * float(i + 1);
#pragma unroll
  for (int r = 0; r < 8; ++r)
#pragma unroll
    for (int i = 0; i < kLive; ++i) acc[i] = fmaf(acc[i], acc[(i + 1) % kLive], acc[(i + 5) % kLive]);
  float s = 0;
#pragma unroll
  for (int i = 0; i < kLive; ++i) s += acc[i];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class Kernel>
int launch(Kernel k, int grid, int threads, size_t smem, float* out) {
  check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)), "cudaFuncSetAttribute");
  int blocks = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k, threads, smem), "cudaOccupancyMaxActive...");
  k<<<grid, threads, smem>>>(out);
  check(cudaGetLastError(), "probe launch");
  return blocks;
}

}  // namespace

int launch_probe(Probe p, int grid, int threads, size_t dynamic_smem, float* out) {
  switch (p) {
    case Probe::kStaticSmem: return launch(probe_static_smem, grid, threads, dynamic_smem, out);
    case Probe::kDynamicSmem: return launch(probe_dynamic_smem, grid, threads, dynamic_smem, out);
    case Probe::kRegisters: return launch(probe_registers, grid, threads, dynamic_smem, out);
  }
  return 0;
}

}  // namespace wattmoe::test
