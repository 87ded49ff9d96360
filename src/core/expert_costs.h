// ExpertCosts: what the experts of one MoE layer cost, as every module that prices routing reads it. Plain data in
// joules, no sensor and no model: energy/ produces it (CostModel::routing_costs), moe/ routes with it, adapt/'s energy
// objective and control/'s degradation ladder rank experts by it (docs/ARCHITECTURE.md, "What an expert costs").
//
// One layer-step's energy is  Σ_{experts e activated in the step} a_e  +  Σ_{(token, expert) pairs} b_e:
//   fixed     a_e  joules per step if expert e runs at all (its weights read once, launches, fixed overheads);
//   per_token b_e  joules per (token, expert) pair (the marginal FLOPs and activations).
// Both vectors have one entry per expert, finite and ≥ 0 (validate_costs).
#pragma once
#include <cstdint>
#include <vector>

namespace wattmoe {

struct ExpertCosts {
  std::vector<float> fixed;      // a_e: J per step, if the expert is activated at all
  std::vector<float> per_token;  // b_e: J per (token, expert) pair
};

// Throws wattmoe::Error unless both vectors have E finite, non-negative entries (the message names the vector, the
// entry and its unit). With required = false, two empty vectors are accepted too (policies that do not price experts).
void validate_costs(const ExpertCosts& costs, int E, bool required);

// The per-token share of each expert's step cost when n tokens go to it: c_e = a_e / n + b_e (joules, in double),
// the price one unit of routing mass pays. Error unless n ≥ 1 and the two vectors have the same length.
std::vector<double> per_token_cost(const ExpertCosts& costs, int64_t n);

}  // namespace wattmoe
