// Effort u ∈ [0, 1] → routing knobs (moe/policy.h) for one policy family at ladder rung 0. u = 0 is exactly
// the model's own top-k (every family's knobs reduce to topk there); u = 1 is the cheapest the family allows;
// every knob moves monotonically toward "cheaper" as u grows:
//
//   cost    λ = u·lambda_max                                  (k_max = model k)
//   top_p   p = 1 − u·(1 − p_min), k_min = 1                  (u = 0: p = 1, k_min = model k: exactly topk)
//   skip    β = u·beta_max, k_min = 1
//   topk    k from model_k down to 1: k_c = model_k − u·(model_k − 1), rounded with hysteresis
//   (TopkQuantizer) budget  budget_j = full_j − u·(full_j − floor_j), k_min = 1 (u = 0: no budget, +inf:
//   exactly topk)
//
// budget_j is per layer-step in joules, so full_j / floor_j hold at one token count; estimate_budget_range()
// gives them from a layer's expert costs for a step of n tokens under uniform routing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "moe/policy.h"

namespace wattmoe {

struct KnobMapConfig {
  std::string policy = "cost";  // cost | top_p | skip | topk | budget
  int num_experts = 8;          // E
  int model_k = 2;              // the model's top-k, 1..E
  double lambda_max =
      4.0;  // cost: λ at u = 1 (logit units; 4 ≈ a 50× odds penalty per unit of normalised cost)
  double p_min = 0.5;         // top_p: p at u = 1, in (0, 1]
  double beta_max = 0.5;      // skip: β at u = 1, in [0, 1]
  double budget_full_j = 0;   // budget: the full-top-k layer-step energy (J), > 0
  double budget_floor_j = 0;  // budget: the layer-step energy at u = 1 (J), in [0, budget_full_j]
  double k_hysteresis =
      0.25;  // topk: extra distance (in k units) past the rounding point before k moves, [0, 0.5)
};

// Error naming the field and its valid range; also checks the knobs at u = 0 and u = 1 with validate_knobs().
void validate(const KnobMapConfig& c, const std::string& where = "knob map");
// The rung-0 families, in the order above.
const std::vector<std::string>& controllable_policies();

// Stateless map. For topk this rounds k_c to the nearest integer (ties toward the larger k) with no
// hysteresis.
PolicyKnobs knobs_for_effort(const KnobMapConfig& c, double u);

// k_c(u) = model_k − u·(model_k − 1), and the u at which k_c equals x (for held discrete levels).
double topk_continuous(int model_k, double u);
double topk_effort_at(int model_k, double k_c);

// Discrete k with hysteresis: from the current k, k moves down only when k_c < k − 0.5 − h and up only when
// k_c > k + 0.5 + h (several levels at once if k_c jumped). u = 0 always gives model_k and u = 1 gives 1 (h <
// 0.5).
class TopkQuantizer {
 public:
  TopkQuantizer(int model_k, double hysteresis);
  int update(double u);
  int k() const { return k_; }
  void reset(int k);
  // The smallest u that keeps k at its current value or below (just above the up-switch point); 0 at model_k.
  double hold_effort() const;

 private:
  int model_k_;
  double h_;
  int k_;
};

// Stateful map: knobs_for_effort for the continuous families, the quantizer for topk.
class KnobMapper {
 public:
  explicit KnobMapper(KnobMapConfig c);
  PolicyKnobs map(double u);
  const KnobMapConfig& config() const { return c_; }
  bool discrete() const { return c_.policy == "topk"; }
  const TopkQuantizer& quantizer() const { return q_; }
  TopkQuantizer& quantizer() { return q_; }

 private:
  KnobMapConfig c_;
  TopkQuantizer q_;
};

struct BudgetRange {
  double full_j = 0, floor_j = 0;
};
// Expected layer-step energy Σ a_e over distinct activated experts + Σ b_e over pairs, with every token
// taking k experts uniformly at random (E·(1 − (1 − k/E)^n) distinct experts on average): full at k =
// model_k, floor at k = 1.
BudgetRange estimate_budget_range(const ExpertCosts& costs, int64_t tokens, int model_k);

}  // namespace wattmoe
