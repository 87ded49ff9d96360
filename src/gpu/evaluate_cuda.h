// Evaluation of a language model on the GPU (gpu/transformer_cuda.h, fp32 or bf16): the same protocol, bookkeeping
// and result as evaluate() in eval/evaluate.h — the windows of EvalWindows (full windows batched, a final partial
// window alone at its own length, each target scored once), bits per byte over the text's bytes, expert counts per
// layer. With the model's host-routing MoE path every routing policy works here as on the CPU; with the fused MoE
// kernels (set_moe_kernels(MoeKernels::Fused)) pass no select: the device routes by plain top-k, and `observe` sees
// each MoE layer's routing after every forward (to price it, see gpu/routing_observer.h).
#pragma once
#include <cstdint>

#include "eval/evaluate.h"
#include "gpu/routing_observer.h"
#include "gpu/transformer_cuda.h"
#include "text/token_stream.h"

namespace wattmoe::gpu {

// The model's weights must already be on the device (upload_params). Overwrites the model's activations (its last
// forward).
template <class T>
EvalResult evaluate_cuda(TransformerCudaT<T>& model, const TokenStream& s, const EvalWindows& w,
                         const RouterSelect<float>& select = nullptr, const RoutingObserver& observe = nullptr);

}  // namespace wattmoe::gpu
