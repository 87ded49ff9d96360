// Evaluation of a language model on the GPU (gpu/transformer_cuda.h, fp32): the same protocol, bookkeeping and
// result as evaluate() in eval/evaluate.h — windows of seq+1 tokens with stride seq, full windows batched `batch` at a
// time, a final partial window alone at its own length, bits per byte over the text's bytes, expert counts per layer.
// Routing runs on the host (TransformerCuda's design), so every routing policy works here as on the CPU.
#pragma once
#include <cstdint>

#include "eval/evaluate.h"
#include "gpu/transformer_cuda.h"
#include "train/data.h"

namespace wattmoe::gpu {

// The model's weights must already be on the device (upload_params). max_tokens > 0 limits the evaluation to the
// stream's first max_tokens + 1 tokens. Overwrites the model's activations (its last forward).
EvalResult evaluate_cuda(TransformerCuda& model, const TokenStream& s, int seq, int batch, int64_t max_tokens = 0,
                         const RouterSelect<float>& select = nullptr);

}  // namespace wattmoe::gpu
