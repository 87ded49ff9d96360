// Scores one window the way eval/evaluate.cpp does (so an unadapted stream reproduces `evaluate` exactly): forward
// on ids[0..S-1] (B = 1) with the runner's routing, NLL of the S targets ids[1..S] summed in nats, plus the window's
// mean next-token entropy, the (token, expert) pairs per layer and the mean experts per token.
#pragma once
#include <cstdint>
#include <vector>

#include "model/runner.h"

namespace wattmoe {

struct WindowScore {
  double nats = 0;                                   // Σ −log p(target)
  int64_t tokens = 0;                                // S
  double entropy = 0;                                // mean next-token entropy, nats
  double experts_per_token = 0;                      // (token, expert) pairs / (tokens × MoE layers)
  std::vector<std::vector<int64_t>> counts;          // [layer][expert]; empty rows for dense layers
};

// ids: S + 1 tokens (all checked against the vocabulary). The runner keeps the forward (a backward may follow).
WindowScore score_window(Runner& run, const int32_t* ids, int S);

}  // namespace wattmoe
