// The budget a model is held at, and the pieces that put the Controller (control/controller.h) in a loop over a
// model's routing — shared by the budgeted run (eval/budgeted_run.h, `wattmoe run`) and the server (serve/engine.h,
// `wattmoe serve`), so both build the controller, read its decisions and report sensor samples the same way.
// Errors name the option as the command line spells it.
#pragma once
#include <string>

#include "control/controller.h"
#include "energy/sensor.h"
#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/config.h"

namespace wattmoe {

struct BudgetOptions {
  double power_w = 0;                   // > 0: hold the plant's mean power at this many watts
  double energy_j_per_token = 0;        // > 0: hold the plant's energy per token (exclusive with power_w)
  std::string schedule;                 // "WINDOW:TARGET,...": step changes of the target (wattmoe run only)
  std::string control_policy = "skip";  // the knob the controller moves: cost, top_p, skip, topk, budget
  bool thermal_guard = true, ladder = true;
  // "default": the PI loop's configured gains; "auto": gains from the plant gain the controller measures on its
  // own steps (control/plant_gain.h)
  std::string control_gains = "default";
  // Relative error the PI loop ignores (BudgetConfig::deadband): smaller for a plant whose whole range is a few % of
  // the target (serving at low headroom), where the default absorbs most of the error
  double control_deadband = BudgetConfig{}.deadband;
  // Steps at full effort and above target before the ladder leaves knob control (LadderConfig::dwell): fewer for
  // long steps (serving's 1 s windows), where the default makes a budget step take many seconds to reach a rung
  int ladder_dwell = LadderConfig{}.dwell;
  // "" (none), fp8 or int8: a ladder level right after knob control with the routed experts re-quantised to this
  // precision, kept by every level below it (wattmoe run on the simulated plant; wattmoe serve, whose GPU decode
  // steps read the cheaper experts; both with --expert-precision bf16)
  std::string ladder_tier;
  bool allow_infeasible = false;        // wattmoe run: a budget below the plant's floor warns instead of failing
  bool active() const { return power_w > 0 || energy_j_per_token > 0; }
};

// Error unless at most one budget is given and each is ≥ 0 and finite, and the knobs are in range; a ladder tier
// needs the ladder and the runner's own expert_precision bf16.
void check_budget_options(const BudgetOptions& b, const std::string& expert_precision = "bf16");

// The controller for an active budget over this model and routing. plant: "sim", "cuda" or "model" (a real GPU's
// temperature is noisy at sub-second steps, so the thermal guard fits its slope over a full window there).
// forward_tokens: the tokens one forward routes (run: a window; serve: a full decode step); the budget knob's joules
// are for a layer-step of that many (control/knob_map.h estimate_budget_range, the mean over the MoE layers).
ControllerConfig budget_controller_config(const BudgetOptions& b, const std::string& plant, const ModelConfig& m,
                                          const RoutingSetup& routing, int64_t forward_tokens);

// The routing a decision asks for: its policy and knobs, per layer when the ladder masks experts layer by layer.
RoutingSpec decision_spec(const ControlDecision& d, const RoutingSetup& routing);

// A sensor sample as the logs report it: power, temperature, clock, thermal margin, clock-event reason bits and names.
Json sample_json(const Sample& s);

}  // namespace wattmoe
