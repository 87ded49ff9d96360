// Shared device helpers of the MoE CUDA kernels: 16-byte loads, warp reductions, the tensor-core primitives
// (ops/cuda/tensor_core.cuh) and the swizzled operand-tile copies of the grouped GEMMs. Included by src/ops/cuda/* only;
// the device functions are compiled by nvcc only.
#pragma once
#include <cstdint>

#include "ops/cuda/moe_kernels.h"
#include "ops/cuda/tensor_core.cuh"

namespace wattmoe::cuda {

// Fast intrinsics (ex2.approx, rcp.approx): a few fp32 ulps from g / (1 + expf(-g)), far below h's bf16 rounding
// (2^-9 relative), at a fraction of the instructions of expf and an IEEE division; it runs 128 times per thread in
// the gate_up epilogue of the 128-row kernels, while the tensor cores wait. g < -87: 0 (the exact value is < 1e-35).
__device__ __forceinline__ float silu(float g) { return __fdividef(g, 1.0f + __expf(-g)); }

// 8 bf16 in a uint4 -> 8 floats.
__device__ __forceinline__ void unpack8(const uint4& v, float* f) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

// Read-only 16-byte load through L1 (small operands that many warps re-read: activations, router weights).
__device__ __forceinline__ uint4 ld_ro(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// Streaming 16-byte load that does not allocate in L1 (expert weights, read once per step).
__device__ __forceinline__ uint4 ld_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Byte offset of 16-byte chunk `c` (0..7) of tile row `r` (128 bytes a row), XOR-swizzled: ldmatrix reads it
// without bank conflicts, and on a 1024-byte-aligned tile it is the 128-byte swizzle of wgmma descriptors and TMA.
__device__ __forceinline__ uint32_t swz(int r, int c) { return uint32_t(r * 128 + ((c ^ (r & 7)) << 4)); }

// Operand rows of one grouped-GEMM tile that this thread copies with cp.async: chunk `chunk` (8 bf16 along K) of
// tile rows row0 + 32*i, i < ITERS (256 threads cover 32 rows a pass).
template <int ITERS>
struct TileRows {
  const bf16* src[ITERS];
  bool ok[ITERS];  // false: the row is outside the matrix (or padding) and is copied as zeros
};

// A tile of BM rows at permuted row m0. gate_up (GATED): x rows gathered through sorted_token (padding rows, -1,
// read as zeros); down: h rows in place. K = H (gate_up) or I (down).
template <bool GATED, int ITERS>
__device__ __forceinline__ TileRows<ITERS> a_tile_rows(const GroupedGemmArgs& a, int m0, int row0, int K) {
  TileRows<ITERS> t;
#pragma unroll
  for (int i = 0; i < ITERS; ++i) {
    const int r = m0 + row0 + 32 * i;
    if constexpr (GATED) {
      const int tok = a.sorted_token[r];
      t.ok[i] = tok >= 0;
      t.src[i] = a.x + size_t(tok >= 0 ? tok : 0) * K;
    } else {
      t.ok[i] = true;
      t.src[i] = a.h + size_t(r) * K;
    }
  }
  return t;
}

// B tile of expert e, output columns from n0. gate_up: HALF gate rows then HALF up rows ([I,H] each); down: rows of
// down[e] ([H,I]). Rows at or past N are copied as zeros.
template <bool GATED, int HALF, int ITERS>
__device__ __forceinline__ TileRows<ITERS> b_tile_rows(const GroupedGemmArgs& a, int e, int n0, int row0, int N,
                                                       int K) {
  TileRows<ITERS> t;
#pragma unroll
  for (int i = 0; i < ITERS; ++i) {
    const int r = row0 + 32 * i;
    const int nr = GATED ? n0 + (r % HALF) : n0 + r;
    t.ok[i] = nr < N;
    const bf16* base = GATED ? (r < HALF ? a.gate : a.up) : a.down;
    t.src[i] = base + (size_t(e) * N + (nr < N ? nr : 0)) * K;
  }
  return t;
}

// cp.async of one BK = 64 slice (k-offset k0 of this thread's chunk) of the rows in `t` into the swizzled tile at
// shared address `s`; columns at or past K are zero-filled.
template <int ITERS>
__device__ __forceinline__ void cp_async_tile(uint32_t s, const TileRows<ITERS>& t, int row0, int chunk, int k, int K) {
  const bool kok = k < K;
  const int koff = kok ? k : 0;
#pragma unroll
  for (int i = 0; i < ITERS; ++i) cp_async16(s + swz(row0 + 32 * i, chunk), t.src[i] + koff, (t.ok[i] && kok) ? 16 : 0);
}

}  // namespace wattmoe::cuda
