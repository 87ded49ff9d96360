// The low-rank branch of a LoRA-adapted projection, forward beside backward. For x [n, in], A [r, in], B [out, r]:
//   forward   y += s · (x·Aᵀ)·Bᵀ     (y already holds x·Wᵀ; this adds, so a zero B leaves y bitwise as it was)
//   backward  with t = x·Aᵀ [n, r] and dt = s · dy·B [n, r]:
//             dB += s · dyᵀ·t,  dA += dtᵀ·x,  dx += dt·A      (all accumulate; any of dx, dA, dB may be null)
//   merged    W' = W + s · B·A  [out, in], each element's Σ_j over the rank in order j = 0..r-1 (the fused GPU path
//             runs the experts on merged weights rounded to bf16 once: cuda::lora_merge; this is its reference)
// The CPU reference of the GPU's LoRA steps (gpu/ffn_cuda.cpp
// issues the same two GEMMs per direction, grouped over experts; cuda::lora_merge). Used by the model's expert FFNs
// (model/transformer.cpp); the base GEMM x·Wᵀ stays ops::linear_*. Harness cases: tests/ops/lora_test.cpp.
#pragma once
#include <cstdint>

namespace wattmoe::ops {

template <class T>
void lora_fwd(const T* x, const T* A, const T* B, T s, T* y, int64_t n, int64_t in, int64_t out, int64_t r);

template <class T>
void lora_bwd(const T* x, const T* A, const T* B, T s, const T* dy, T* dx, T* dA, T* dB, int64_t n,
              int64_t in, int64_t out, int64_t r);

template <class T>
void lora_merge(const T* W, const T* A, const T* B, T s, T* merged, int64_t out, int64_t in, int64_t r);

}  // namespace wattmoe::ops
