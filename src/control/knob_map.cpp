#include "control/knob_map.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace wattmoe {

const std::vector<std::string>& controllable_policies() {
  static const std::vector<std::string> names = {"cost", "top_p", "skip", "topk", "budget"};
  return names;
}

void validate(const KnobMapConfig& c, const std::string& where) {
  const auto& names = controllable_policies();
  WATTMOE_REQUIRE(
      std::find(names.begin(), names.end(), c.policy) != names.end(),
      "{}: policy '{}': expected one of cost, top_p, skip, topk, budget (mask is the ladder's rung 2)", where,
      c.policy);
  WATTMOE_REQUIRE(c.num_experts >= 1, "{}: num_experts = {}: expected E >= 1", where, c.num_experts);
  WATTMOE_REQUIRE(c.model_k >= 1 && c.model_k <= c.num_experts, "{}: model_k = {}: expected 1 <= k <= E = {}",
                  where, c.model_k, c.num_experts);
  WATTMOE_REQUIRE(std::isfinite(c.lambda_max) && c.lambda_max >= 0,
                  "{}: lambda_max = {}: expected a finite price weight >= 0", where, c.lambda_max);
  WATTMOE_REQUIRE(c.p_min > 0 && c.p_min <= 1, "{}: p_min = {}: expected 0 < p_min <= 1", where, c.p_min);
  WATTMOE_REQUIRE(c.beta_max >= 0 && c.beta_max <= 1, "{}: beta_max = {}: expected 0 <= beta_max <= 1", where,
                  c.beta_max);
  WATTMOE_REQUIRE(c.k_hysteresis >= 0 && c.k_hysteresis < 0.5,
                  "{}: k_hysteresis = {}: expected [0, 0.5) (k units past the rounding point)", where,
                  c.k_hysteresis);
  if (c.policy == "budget") {
    WATTMOE_REQUIRE(std::isfinite(c.budget_full_j) && c.budget_full_j > 0,
                    "{}: budget_full_j = {}: expected the full-top-k layer-step energy, finite joules > 0",
                    where, c.budget_full_j);
    WATTMOE_REQUIRE(
        std::isfinite(c.budget_floor_j) && c.budget_floor_j >= 0 && c.budget_floor_j <= c.budget_full_j,
        "{}: budget_floor_j = {}: expected joules in [0, budget_full_j = {}]", where, c.budget_floor_j,
        c.budget_full_j);
  }
  // The ends of the range must be knobs the policies accept.
  validate_knobs(knobs_for_effort(c, 0.0), c.num_experts, c.model_k);
  validate_knobs(knobs_for_effort(c, 1.0), c.num_experts, c.model_k);
}

double topk_continuous(int model_k, double u) {
  return double(model_k) - u * double(model_k - 1);
}

double topk_effort_at(int model_k, double k_c) {
  if (model_k <= 1) return 0.0;
  return std::clamp((double(model_k) - k_c) / double(model_k - 1), 0.0, 1.0);
}

PolicyKnobs knobs_for_effort(const KnobMapConfig& c, double u) {
  WATTMOE_CHECK(u >= 0 && u <= 1, "u = {}", u);
  PolicyKnobs k;
  if (c.policy == "cost") {
    k.lambda = float(u * c.lambda_max);
  } else if (c.policy == "top_p") {
    // p = 1 with k_min = K is exactly topk (moe/policy.h); any u > 0 releases k_min to 1.
    k.p = u > 0 ? float(1.0 - u * (1.0 - c.p_min)) : 1.f;
    k.k_min = u > 0 ? 1 : c.model_k;
  } else if (c.policy == "skip") {
    k.beta = float(u * c.beta_max);
    k.k_min = 1;
  } else if (c.policy == "topk") {
    // Nearest integer, ties toward the larger k (the quality side).
    k.k_max = std::clamp(int(std::floor(topk_continuous(c.model_k, u) + 0.5)), 1, c.model_k);
  } else if (c.policy == "budget") {
    k.budget_j = u > 0 ? c.budget_full_j - u * (c.budget_full_j - c.budget_floor_j)
                       : std::numeric_limits<double>::infinity();
    k.k_min = 1;
  } else {
    WATTMOE_CHECK(false, "unvalidated policy {}", c.policy);
  }
  return k;
}

TopkQuantizer::TopkQuantizer(int model_k, double hysteresis)
    : model_k_(model_k), h_(hysteresis), k_(model_k) {
  WATTMOE_REQUIRE(model_k >= 1, "topk quantizer: model_k = {}: expected >= 1", model_k);
  WATTMOE_REQUIRE(hysteresis >= 0 && hysteresis < 0.5, "topk quantizer: hysteresis = {}: expected [0, 0.5)",
                  hysteresis);
}

int TopkQuantizer::update(double u) {
  WATTMOE_CHECK(u >= 0 && u <= 1, "u = {}", u);
  const double kc = topk_continuous(model_k_, u);
  while (k_ > 1 && kc < double(k_) - 0.5 - h_) --k_;
  while (k_ < model_k_ && kc > double(k_) + 0.5 + h_) ++k_;
  return k_;
}

void TopkQuantizer::reset(int k) {
  WATTMOE_CHECK(k >= 1 && k <= model_k_, "k = {}", k);
  k_ = k;
}

double TopkQuantizer::hold_effort() const {
  if (k_ >= model_k_) return 0.0;
  return topk_effort_at(model_k_, double(k_) + 0.5 + h_);
}

namespace {
KnobMapConfig checked(KnobMapConfig c) {
  validate(c);
  return c;
}
}  // namespace

KnobMapper::KnobMapper(KnobMapConfig c) : c_(checked(std::move(c))), q_(c_.model_k, c_.k_hysteresis) {}

PolicyKnobs KnobMapper::map(double u) {
  if (!discrete()) return knobs_for_effort(c_, u);
  PolicyKnobs k;
  k.k_max = q_.update(u);
  return k;
}

BudgetRange estimate_budget_range(const ExpertCosts& costs, int64_t tokens, int model_k) {
  const int E = int(costs.fixed.size());
  validate_costs(costs, E, true);
  WATTMOE_REQUIRE(E >= 1, "estimate_budget_range: expected costs for at least one expert");
  WATTMOE_REQUIRE(tokens >= 1, "estimate_budget_range: tokens = {}: expected >= 1", tokens);
  WATTMOE_REQUIRE(model_k >= 1 && model_k <= E,
                  "estimate_budget_range: model_k = {}: expected 1 <= k <= E = {}", model_k, E);
  double a = 0, b = 0;
  for (int e = 0; e < E; ++e) a += costs.fixed[size_t(e)], b += costs.per_token[size_t(e)];
  a /= E, b /= E;
  auto energy = [&](int k) {
    const double distinct = E * (1.0 - std::pow(1.0 - double(k) / E, double(tokens)));
    return a * distinct + b * double(tokens) * k;
  };
  return {energy(model_k), energy(1)};
}

}  // namespace wattmoe
