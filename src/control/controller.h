// Controller: holds a power or energy budget with the model as the actuator. It composes the BudgetController
// (PI loop → effort u), the ThermalGuard (a floor on u before the GPU throttles), the knob map (u →
// PolicyKnobs of the chosen policy) and the DegradationLadder (top-1, expert masks, smaller batches when the
// knob is not enough).
//
// Once per step (decode step, batch, or window of steps) the caller reports what the step that just ended
// measured and applies the returned decision to the next one:
//
//   ControlDecision d = ctl.update({.step = n, .dt_s = seconds, .power_w = W, .sample = sensor.read()});
//   policy = make_policy(d.policy);  knobs for layer l = d.knobs_for_layer(l);  tokens per batch ×
//   d.batch_scale
//
// With gains.adapt, each step's (u applied, y measured) also feeds a PlantGainEstimator (reset when the ladder moves),
// and once u has moved the PI gains are gains_for_plant(slope, target, alpha) with ki clamped to [ki_min, ki_max] —
// the trusted slope, else the upper bound on |dy/du| the noisy data allow (gains stable for any plant that weak) —
// for plants where the knob moves the measurement far less (or more) than the default gains assume (a GPU board
// whose power hardly follows routing).
//
// Order inside update: thermal floor from the sample → (topk only) the held-level floor → PI with u ≥ floor →
// ladder (which may move one level; a climb resets u to 1, a move down into a batch level to the floor) → knobs
// and, on a batch level, the batch share u sets. Discrete topk: k moves with hysteresis,
// and the controller remembers the measurement at every k, so k only rises when the larger k is predicted to
// fit the target (y_now · memory[k+1] / memory[k] ≤ target); otherwise u is held at the switch point. That
// removes the slow limit cycle an integrator makes with a quantised actuator when the target sits between
// levels.
//
// The controller knows no model and no plant: it sees numbers and returns knobs. Deterministic: the same
// inputs give the same decisions.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/budget_controller.h"
#include "control/knob_map.h"
#include "control/ladder.h"
#include "control/plant_gain.h"
#include "control/thermal_guard.h"
#include "energy/sensor.h"
#include "moe/policy.h"

namespace wattmoe {

struct ControllerConfig {
  BudgetConfig budget;
  KnobMapConfig knobs;
  ThermalConfig thermal;
  LadderConfig ladder;
  PlantGainConfig gains;  // gains.adapt: the PI gains follow the plant gain measured at the current ladder level
};

void validate(const ControllerConfig& c);

struct ControlInput {
  int64_t step = 0;                // strictly increasing
  double dt_s = 0;                 // seconds the step took, > 0
  double power_w = kNaN;           // mean power over the step (needed when the budget is in W)
  double joules_per_token = kNaN;  // energy per token over the step (needed when the budget is in J/token)
  std::optional<Sample> sample;  // the sensor's reading at the step's end (temperature, margin, reason bits)
};

struct ControlDecision {
  int64_t step = 0;
  std::string policy;                          // a make_policy() name
  PolicyKnobs knobs;                           // knobs.mask is empty; per-layer masks are in layer_masks
  std::vector<std::vector<bool>> layer_masks;  // [layers][E], true = pruned; empty = none
  double u = 0;                                // effort after the floor
  double floor = 0;  // the lower limit on u this step (thermal guard, held topk level)
  double thermal_floor = 0;
  int rung = 0, level = 0;
  double batch_scale = 1.0;
  std::string expert_tier;  // "" = the run's own; else the routed experts' precision the level asks for
  bool thermal_active = false;
  double measured = kNaN;  // the controlled quantity of the step that just ended
  double error = 0;        // (measured − target) / target
  std::string reason;

  // knobs with layer_masks[layer] applied (or the knobs as they are when nothing is masked).
  PolicyKnobs knobs_for_layer(int layer) const;
};

class Controller {
 public:
  explicit Controller(ControllerConfig c);

  ControlDecision update(const ControlInput& in);
  void set_target(double target);  // step change at run time (W or J/token, as configured)

  // The decision before any measurement: full quality at rung 0.
  ControlDecision initial() const;
  const ControllerConfig& config() const { return c_; }
  const BudgetController& budget() const { return pi_; }
  const ThermalGuard& thermal() const { return guard_; }
  const DegradationLadder& ladder() const { return ladder_; }

 private:
  ControlDecision decide(int64_t step, double u, double floor, double thermal_floor);
  double held_level_floor(double measured);

  ControllerConfig c_;
  BudgetController pi_;
  ThermalGuard guard_;
  KnobMapper mapper_;
  DegradationLadder ladder_;
  PlantGainEstimator gain_;
  int gain_level_ = 0;              // the ladder level gain_'s pairs were measured at
  std::map<int, double> k_memory_;  // topk: k → last measurement with that k at rung 0
  int prev_level_ = 0, prev_k_ = 0;
  int64_t last_step_ = 0;
  bool started_ = false;
};

}  // namespace wattmoe
