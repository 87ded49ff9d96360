// Evaluation of a language model on a token stream. Protocol (EvalWindows): windows of up to seq+1 tokens starting
// every `stride` tokens; each window scores only the targets no earlier window scored, so every token after the first
// is predicted exactly once. stride = seq (the default) gives disjoint windows: a token has 0 … seq−1 tokens of
// context besides the window's first, seq/2 on average. stride < seq is the sliding window of HF's perplexity guide:
// after the first window every target has at least seq − stride tokens of context, at (seq/stride)× the compute.
// The last window may be shorter and runs alone at its own length. Bits per byte divide total nats by ln 2 × the
// text's UTF-8 bytes (for the byte tokenizer, one token is one byte).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/runner.h"
#include "text/token_stream.h"

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

struct EvalWindows {
  int seq = 128;           // ≥ 1: a window predicts up to seq targets from seq inputs
  int batch = 16;          // ≥ 1: full windows per forward
  int64_t max_tokens = 0;  // > 0: only the stream's first max_tokens + 1 tokens
  int stride = 0;          // 1 … seq between window starts; 0: seq
  int step() const { return stride != 0 ? stride : seq; }
};

// The window protocol on any runner (model/runner.h) with its current routing. Expert counts cover every position the
// model ran, context positions of a sliding window included.
// `progress`, when set, is called after every forward with the windows done, the windows in all and the seconds so far.
using EvalProgress = std::function<void(int64_t done, int64_t total, double seconds)>;
EvalResult evaluate(Runner& run, const TokenStream& s, const EvalWindows& w, const EvalProgress& progress = {});

}  // namespace wattmoe
