// Evaluation of a language model on a token stream. Protocol: windows of seq+1 tokens with stride seq, so every
// token after the first is predicted exactly once with up to seq tokens of context; a final partial window scores
// what remains. Bits per byte divide total nats by ln 2 × the text's UTF-8 bytes (for the byte tokenizer, one token
// is one byte).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/transformer.h"
#include "train/data.h"

namespace wattmoe {

struct EvalResult {
  double nats = 0;        // total
  int64_t tokens = 0;     // scored tokens
  int64_t bytes = 0;      // bytes those tokens cover
  double seconds = 0;
  std::vector<std::vector<int64_t>> expert_counts;  // [layer][expert] (token, expert) pairs; empty for dense layers
  double experts_per_token = 0;                     // mean over MoE layers
  double bits_per_byte() const;
  double nats_per_token() const { return tokens ? nats / double(tokens) : 0; }
  double perplexity() const;
  double tokens_per_second() const { return seconds > 0 ? double(tokens) / seconds : 0; }
};

// Scores one batch of windows for evaluate_windows: returns Σ −log p(target) in nats over ids/targets [B, len], and
// leaves each MoE layer's routing of that batch readable through `routing` until the next call.
struct BatchScorer {
  std::function<double(const int32_t* ids, const int32_t* targets, int B, int len)> score;
  std::function<const Routing&(int layer)> routing;
};

// The window protocol and its bookkeeping, whatever runs the model (the CPU here, the GPU in gpu/evaluate_cuda.h).
// max_tokens > 0 limits the evaluation to the stream's first max_tokens + 1 tokens.
EvalResult evaluate_windows(const ModelConfig& c, const TokenStream& s, int seq, int batch, int64_t max_tokens,
                            const BatchScorer& scorer);

// The CPU model over evaluate_windows.
EvalResult evaluate(const Transformer<float>& model, const float* params, const TokenStream& s, int seq, int batch,
                    int64_t max_tokens = 0, const RouterSelect<float>& select = nullptr);

}  // namespace wattmoe
