// Does compute-sanitizer racecheck model mbarrier ordering? The MoE GEMM kernels hand work units from one producer
// thread to the consumer warps through a 2-slot ring in shared memory ordered only by mbarriers (full: release by the
// producer's arrive, acquire by the readers' try_wait; empty: the readers' arrives, the producer's wait). racecheck
// reports hazards on that ring. This probe runs the protocol alone in two forms — every reader arrives on the empty
// barrier itself (`mbarrier`), or, as the kernels do, the readers meet at a named barrier (bar.sync) and one of them
// arrives for all (`mbarrier_named`) — beside a version synchronised with __syncthreads and one with no
// synchronisation at all (a real race), and checks the values the readers saw. Under racecheck: a hazard on a version
// whose every read is right, while the unsynchronised one is caught, is a protocol the tool does not model.
// Seen on an H200 (2026-11-26): mbarrier 0 hazards, syncthreads 0, mbarrier_named 4 race reports, none caught (8 and 520
// errors in two runs); every read right except in `none` (8,192-12,800 of 14,336 stale).
//
//   nvcc -std=c++17 -arch=sm_90a -o probe scripts/device/racecheck_mbarrier_probe.cu
//   ./probe mbarrier|mbarrier_named|syncthreads|none   # exit 0 when every reader saw every unit, in order
//   compute-sanitizer --tool racecheck ./probe mbarrier
#include <cstdio>
#include <cstring>
#include <cuda_runtime.h>

constexpr int kThreads = 256, kUnits = 64, kReaders = kThreads - 32;  // warp 0 produces (thread 0), warps 1-7 read

__device__ __forceinline__ void bar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void bar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void bar_wait(unsigned bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred p;\nWAIT:\n"
      "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT;\n}\n" ::"r"(bar), "r"(parity)
      : "memory");
}

template <int MODE>  // 0: mbarrier ring, 1: __syncthreads, 2: none, 3: mbarrier ring, readers give back through bar.sync
__global__ void ring(int* seen) {
  __shared__ __align__(8) unsigned long long bars[4];  // full[2], empty[2]
  __shared__ volatile int slot[2];
  const unsigned full0 = unsigned(__cvta_generic_to_shared(&bars[0])), empty0 = full0 + 16;
  const int tid = threadIdx.x;
  constexpr bool kRing = MODE == 0 || MODE == 3;
  constexpr unsigned kGivers = MODE == 3 ? 1 : kReaders;
  if (kRing && tid == 0) {
    bar_init(full0, 1), bar_init(full0 + 8, 1), bar_init(empty0, kGivers), bar_init(empty0 + 8, kGivers);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  for (int n = 0; n < kUnits; ++n) {
    const int s = n & 1;
    const unsigned ph = (n >> 1) & 1;
    if (tid == 0) {
      if (kRing) bar_wait(empty0 + 8 * s, ph ^ 1);  // the readers gave slot s back (fresh: parity 1 completes)
      slot[s] = 1000 + n;
      if (kRing) bar_arrive(full0 + 8 * s);
    }
    if (MODE == 1) __syncthreads();
    if (tid >= 32) {
      if (kRing) bar_wait(full0 + 8 * s, ph);
      seen[n * kReaders + tid - 32] = slot[s];
      if (MODE == 3) asm volatile("bar.sync 1, %0;\n" ::"n"(kReaders) : "memory");  // every reader has read slot s
      if (MODE == 0 || (MODE == 3 && tid == 32)) bar_arrive(empty0 + 8 * s);
    }
    if (MODE == 1) __syncthreads();
  }
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "mbarrier";
  int* d = nullptr;
  cudaMalloc(&d, sizeof(int) * kUnits * kReaders);
  cudaMemset(d, 0xff, sizeof(int) * kUnits * kReaders);
  if (!strcmp(mode, "mbarrier")) ring<0><<<1, kThreads>>>(d);
  else if (!strcmp(mode, "mbarrier_named")) ring<3><<<1, kThreads>>>(d);
  else if (!strcmp(mode, "syncthreads")) ring<1><<<1, kThreads>>>(d);
  else ring<2><<<1, kThreads>>>(d);
  static int h[kUnits * kReaders];
  if (cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost) != cudaSuccess) return printf("CUDA error\n"), 2;
  int wrong = 0;
  for (int n = 0; n < kUnits; ++n)
    for (int r = 0; r < kReaders; ++r) wrong += h[n * kReaders + r] != 1000 + n;
  printf("%s: %d of %d reads saw another unit than the one published\n", mode, wrong, kUnits * kReaders);
  return wrong ? 1 : 0;
}
