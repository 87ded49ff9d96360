// The work one expert does in one step, from its shape alone: the single home of the expert FLOP/byte formula that
// the analytic cost model (energy/cost_analytic.h), the simulated plant (plant/sim_plant.h) and the controller's
// closed-loop test plant price. For a SwiGLU expert (gate, up, down: `matrices` weight matrices of hidden × ffn)
// running once over n tokens (n may be fractional: an expected or scaled count):
//   flops(n) = 2·matrices·hidden·ffn · n
//   bytes(n) = matrices·hidden·ffn·weight_bytes  +  (2·hidden + 2·ffn)·act_bytes · n
// (weights are read once per step; per token the input and output rows and the intermediate are written and read
// once). The pieces are exposed so that a caller pricing a different count of weight reads than of tokens (the
// closed-loop plant's expected distinct experts) evaluates the very same expressions in the same order.
// energy/ knows no model: shapes arrive as plain numbers.
#pragma once
#include <cstdint>

namespace wattmoe {

struct ExpertShape {
  int64_t hidden = 0;
  int64_t ffn = 0;
  double weight_bytes = 2;  // per parameter (bf16 2, fp8 1, ...)
  double act_bytes = 2;     // per activation element
  int matrices = 3;         // SwiGLU
};

struct ExpertWork {
  double flops = 0;
  double bytes = 0;
};

// 2·matrices·hidden·ffn: FLOPs per token.
inline double expert_flops_per_token(const ExpertShape& s) {
  return 2.0 * s.matrices * double(s.hidden) * double(s.ffn);
}
// matrices·hidden·ffn·weight_bytes: the weights, read once per step the expert runs.
inline double expert_weight_bytes(const ExpertShape& s) {
  return s.matrices * double(s.hidden) * double(s.ffn) * s.weight_bytes;
}
// (2·hidden + 2·ffn)·act_bytes: activation bytes per token.
inline double expert_act_bytes_per_token(const ExpertShape& s) {
  return (2.0 * double(s.hidden) + 2.0 * double(s.ffn)) * s.act_bytes;
}

// One run of the expert over `tokens` tokens: flops(tokens), bytes(tokens) as above.
inline ExpertWork expert_work(const ExpertShape& s, double tokens) {
  return {expert_flops_per_token(s) * tokens, expert_weight_bytes(s) + expert_act_bytes_per_token(s) * tokens};
}

}  // namespace wattmoe
