// A stream run (adapt/stream.h) with each window scored on the GPU by TransformerCuda (fp32 or bf16): the same windows,
// totals and callback as run_stream's no-adaptation path, and the same per-window score as adapt/window_score.h —
// forward on ids[0..S-1] (B = 1) with the control's router selection (routing runs on the host, so every policy and
// controller decision applies unchanged), Σ NLL of ids[1..S] in nats, the mean next-token entropy, the (token, expert)
// pairs per MoE layer and the experts per token. Only the summation order of fp32 maths differs from the CPU.
// No adaptation here: test-time training on the GPU is TestTimeAdapter over gpu/adapt_model_cuda.h (run_stream).
// With the fused MoE kernels (set_moe_kernels(MoeKernels::Fused)) the control's select must stay null (the device routes by plain top-k) and
// `observe` sees each MoE layer's routing after every window's forward (gpu/routing_observer.h).
#pragma once
#include "adapt/stream.h"
#include "gpu/routing_observer.h"
#include "gpu/transformer_cuda.h"

namespace wattmoe::gpu {

// The model's weights must already be on the device (upload_params). Overwrites its activations (last forward).
// infer_seconds per window includes the synchronising downloads (the NLL, the entropy and the routing).
template <class T>
StreamResult run_stream_cuda(TransformerCudaT<T>& model, const TokenStream& s, const StreamOptions& opt,
                             StreamControl control = {}, const WindowCallback& callback = nullptr,
                             const RoutingObserver& observe = nullptr);

}  // namespace wattmoe::gpu
