// The analytic work of one forward step of a model, from the routing it took: what the cost model
// (energy/cost_analytic.h) predicts a step costs, so a measured J/token can be set against the J/token share the
// removed expert work predicts (bench/energy_policies.cpp).
//
// Every block is priced with AnalyticCostModel's roofline formula, J = static_w·t + pJ/FLOP·flops + pJ/B·bytes
// with t = max(flops / peak, bytes / bandwidth) + launch (default HardwareCoeffs: H100-like):
//   experts    each expert with n > 0 tokens in the layer-step: AnalyticCostModel's SwiGLU expert at n tokens
//              (flops 6·H·I·n, bytes 3·H·I·wb + (2H + 2I)·ab·n: weights read once per step)
//   attention  projections: flops 2·N·H·(2q + 2kv), bytes H·(2q + 2kv)·wb + N·(2H + 2q + 2kv)·ab;
//              core, per sequence with n new tokens over `context` positions (cached + new):
//              flops 4·nh·hd·n·(context − (n − 1)/2) (causal), bytes nh·n·context·12 (fp32 scores and bf16
//              probabilities written and read) + 2·context·kv·ab (keys and values read)
//   router     flops 2·N·H·E, bytes E·H·wb + N·(H + E)·ab
//   lm_head    flops 2·N·H·V, bytes V·H·wb + N·(H + V)·ab
// (N = rows of the step, q = nh·hd, kv = nkv·hd, wb / ab bytes per weight / activation). Norms, RoPE, the
// embedding gather and the combine are left out (element-wise, small). Shared experts and dense MLP layers are
// priced as experts of their width that every token takes. These are predictions for ratios between routings of
// the same model and mode, not absolute joules.
#pragma once
#include <cstdint>
#include <vector>

#include "energy/cost_analytic.h"
#include "model/config.h"

namespace wattmoe {

struct StepWork {
  double expert_flops = 0, expert_bytes = 0, expert_j = 0;  // routed experts
  double dense_flops = 0, dense_bytes = 0, dense_j = 0;     // everything else priced (independent of routing)
  double total_j() const { return expert_j + dense_j; }
  StepWork& operator+=(const StepWork& o);
};

class StepWorkModel {
 public:
  // weight_bytes / act_bytes: 2 for bf16, 4 for fp32.
  explicit StepWorkModel(const ModelConfig& c, double weight_bytes = 2, double act_bytes = 2, HardwareCoeffs hw = {});

  // The routing-independent part of a forward of `seqs` sequences, each adding `new_tokens` rows at positions
  // context − new_tokens … context − 1 (prefill from 0: new_tokens = context; one decode step: new_tokens = 1).
  StepWork dense(int64_t seqs, int64_t new_tokens, int64_t context) const;
  // One MoE layer-step's routed experts: counts[e] (token, expert) pairs on expert e.
  StepWork experts(int layer, const std::vector<int32_t>& counts) const;

  // J of one block of this work (the roofline formula above).
  double block_joules(double flops, double bytes) const;

 private:
  ModelConfig c_;
  double wb_, ab_;
  HardwareCoeffs hw_;
  AnalyticCostModel experts_;
};

}  // namespace wattmoe
