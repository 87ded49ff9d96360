#include "eval/budget_control.h"

#include <cmath>

#include "core/error.h"
#include "ops/quant.h"

namespace wattmoe {

void check_budget_options(const BudgetOptions& b, const std::string& expert_precision) {
  WATTMOE_REQUIRE(!(b.power_w > 0 && b.energy_j_per_token > 0),
                  "--power-budget-w and --energy-budget-j-per-token are exclusive: give one budget");
  WATTMOE_REQUIRE(b.power_w >= 0 && b.energy_j_per_token >= 0 && std::isfinite(b.power_w) &&
                      std::isfinite(b.energy_j_per_token),
                  "--power-budget-w/--energy-budget-j-per-token must be > 0 (got {} W, {} J/token)", b.power_w, b.energy_j_per_token);
  WATTMOE_REQUIRE(b.control_gains == "default" || b.control_gains == "auto",
                  "--control-gains {}: expected default (the controller's configured gains) or auto (gains from the "
                  "plant gain measured on the controller's own steps)", b.control_gains);
  WATTMOE_REQUIRE(b.control_deadband >= 0 && b.control_deadband < 0.5,
                  "--control-deadband {}: expected a relative error in [0, 0.5)", b.control_deadband);
  WATTMOE_REQUIRE(b.ladder_dwell >= 1, "--ladder-dwell {}: expected at least 1 step", b.ladder_dwell);
  if (!b.ladder_tier.empty()) {
    WATTMOE_REQUIRE(ops::parse_expert_precision(b.ladder_tier, "--ladder-tier") != ops::ExpertPrecision::Bf16,
                    "--ladder-tier bf16: the tier level needs a cheaper precision than the run's own: fp8 or int8");
    WATTMOE_REQUIRE(b.ladder, "--ladder-tier with --no-ladder: the tier is a ladder level");
    WATTMOE_REQUIRE(expert_precision == "bf16",
                    "--ladder-tier {} with --expert-precision {}: the tier level switches bf16 experts to a cheaper "
                    "precision; run with --expert-precision bf16", b.ladder_tier, expert_precision);
  }
}

ControllerConfig budget_controller_config(const BudgetOptions& b, const std::string& plant, const ModelConfig& m,
                                          const RoutingSetup& routing, int64_t forward_tokens) {
  ControllerConfig c;
  c.budget.measure = b.power_w > 0 ? Measure::Power : Measure::JoulesPerToken;
  c.budget.target = b.power_w > 0 ? b.power_w : b.energy_j_per_token;
  c.budget.deadband = b.control_deadband;
  c.knobs.policy = b.control_policy;
  c.knobs.num_experts = m.num_experts, c.knobs.model_k = m.top_k;
  c.thermal.enabled = b.thermal_guard;
  // A real GPU's temperature is noisy at sub-second steps: fit the slope over a full window before extrapolating.
  if (plant == "cuda") c.thermal.min_fit_span_s = 0.8 * c.thermal.slope_window_s;
  c.ladder.enabled = b.ladder;
  c.ladder.dwell = b.ladder_dwell;
  c.ladder.expert_tier = b.ladder_tier;
  c.gains.adapt = b.control_gains == "auto";
  // The mask rung prunes the most expensive experts, ranked by a_e + b_e (tokens_per_step 1: a whole step's fixed
  // cost plus one pair); when every expert costs the same there is nothing to gain from it but lost quality, so the
  // ladder goes from top-1 straight to smaller batches.
  c.ladder.layer_costs = routing.layer_costs;
  c.ladder.tokens_per_step = 1;
  bool uniform = true;
  for (const ExpertCosts& layer : c.ladder.layer_costs) {
    const std::vector<double> costs = per_token_cost(layer, c.ladder.tokens_per_step);
    for (double x : costs) uniform = uniform && x == costs.front();
  }
  if (uniform) c.ladder.layer_costs.clear();
  // --control-policy budget: the knob's joules are a layer-step's. u = 0 gives the MoE layers' mean top-k step energy
  // (estimate_budget_range, uniform routing), u = 1 a zero budget: exactly each token's top-k_min, whatever the
  // router's skew (the uniform estimate of top-1 assumes every expert active, so a skewed router would keep second
  // experts under it).
  if (b.control_policy == "budget") {
    WATTMOE_REQUIRE(forward_tokens >= 1, "--control-policy budget: {} tokens a forward: expected >= 1", forward_tokens);
    double full = 0;
    int layers = 0;
    for (size_t l = 0; l < routing.layer_costs.size(); ++l) {
      if (!m.is_moe_layer(int(l))) continue;
      full += estimate_budget_range(routing.layer_costs[l], forward_tokens, m.top_k).full_j, ++layers;
    }
    WATTMOE_REQUIRE(layers > 0 && full > 0, "--control-policy budget: the routed experts have no cost to budget "
                    "(a model without MoE layers, or a cost table of zeros)");
    c.knobs.budget_full_j = full / layers, c.knobs.budget_floor_j = 0;
  }
  validate(c);
  return c;
}

RoutingSpec decision_spec(const ControlDecision& d, const RoutingSetup& routing) {
  RoutingSpec s = routing.spec();
  s.policy = d.policy, s.knobs = d.knobs;
  if (!d.layer_masks.empty())
    for (size_t l = 0; l < d.layer_masks.size(); ++l) s.layer_knobs.push_back(d.knobs_for_layer(int(l)));
  return s;
}

Json sample_json(const Sample& s) {
  Json j{{"power_w", s.power_w}, {"gpu_temp_c", s.gpu_temp_c}, {"sm_clock_mhz", s.sm_clock_mhz},
         {"thermal_margin_c", s.thermal_margin_c}};
  j["clock_event_reasons"] = s.clock_event_reasons ? Json(*s.clock_event_reasons) : Json(nullptr);
  std::vector<std::string> names;
  if (s.clock_event_reasons) names = clock_event_reason_names(*s.clock_event_reasons);
  j["reasons"] = names;
  return j;
}

}  // namespace wattmoe
