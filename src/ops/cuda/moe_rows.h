// Row gathers and combines for the GPU transformer's MoE block (gpu/transformer_cuda.h). T is float or bf16; sums and
// products are in fp32, weights and dot products are fp32. All pointers are device memory; launches are asynchronous
// on ctx.stream().
//   gather_rows:  dst[r, :] = (scale ? scale[r] : 1) · src[idx[r], :]                 r < rows   (overwrites dst)
//   sum_rows:     dst[t, :] += Σ_{s<k, row_of[t,s] ≥ 0} (weight ? weight[t,s] : 1) · src[row_of[t,s], :]
//                 summed in s order into a zero accumulator, then added to dst once (the CPU combine's order)
//   row_dots:     out[r] = ⟨a[idx[r], :], b[r, :]⟩ (per-lane sums in j order, then a fixed tree)  (overwrites out)
//   router_backward: one MoE layer's ∂L/∂(router logits) from ∂L/∂(route weight) on the device — the host path's
//                 route_weights_bwd (moe/routing.h) then softmax_bwd (ops/softmax.h), per token in the same order:
//                   dweight[t,s] = row_of[t,s] ≥ 0 ? dweight_rows[row_of[t,s]] : 0
//                   dprobs = route_weights_bwd(ids [N,S] (−1 unused), probs [N,E], weights [N,S], dweight, renorm)
//                   dlogits[t,:] = (drouter ? drouter[t,:] : 0) + softmax_bwd(probs, dprobs)   (OVERWRITES dlogits)
//                 probs, weights, dweight_rows, drouter fp32; dlogits rounded once to T.
#pragma once
#include <cstdint>

#include "ops/cuda/context.h"

namespace wattmoe::cuda {

template <class T>
void gather_rows(Context& ctx, const T* src, const int32_t* idx, const float* scale, T* dst, int64_t rows, int64_t H);
template <class T>
void sum_rows(Context& ctx, const T* src, const int64_t* row_of, const float* weight, T* dst, int64_t N, int k,
              int64_t H);
template <class T>
void row_dots(Context& ctx, const T* a, const int32_t* idx, const T* b, float* out, int64_t rows, int64_t H);
template <class T>
void router_backward(Context& ctx, const int32_t* ids, const float* probs, const float* weights, const int64_t* row_of,
                     const float* dweight_rows, const float* drouter, bool renorm, int64_t N, int S, int E,
                     T* dlogits);

}  // namespace wattmoe::cuda
