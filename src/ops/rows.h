// Row gathers and combines of the MoE block: the CPU reference of ops/cuda/moe_rows.h (same arguments, same meaning;
// the GPU's weights, scales and dot products are fp32 whatever T is). No thread pool: callers split tokens or rows.
//   gather_rows  dst[r, :] = (scale ? scale[r] : 1) · src[idx[r], :]                          r < rows (overwrites)
//   sum_rows     dst[t, :] += Σ_{s<k, row_of[t,s] ≥ 0} (weight ? weight[t,s] : 1) · src[row_of[t,s], :]   t < N,
//                summed in s order into a zero accumulator, then added to dst once (the MoE combine; row_of -1: an
//                empty slot)
//   row_dots     out[r] = ⟨a[idx[r], :], b[r, :]⟩, summed in column order                      r < rows (overwrites)
// The combine's backward is these two: ∂src[row_of[t,s]] = weight[t,s] · ∂dst[t] (gather_rows with the rows' weights)
// and ∂weight[t,s] = ⟨∂dst[t], src[row_of[t,s]]⟩ (row_dots).
#pragma once
#include <cstdint>

namespace wattmoe::ops {

template <class T>
void gather_rows(const T* src, const int32_t* idx, const T* scale, T* dst, int64_t rows, int64_t H);
template <class T>
void sum_rows(const T* src, const int64_t* row_of, const T* weight, T* dst, int64_t N, int k, int64_t H);
template <class T>
void row_dots(const T* a, const int32_t* idx, const T* b, T* out, int64_t rows, int64_t H);

}  // namespace wattmoe::ops
