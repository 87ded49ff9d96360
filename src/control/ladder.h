// DegradationLadder: what the controller does when the effort knob alone cannot hold the budget.
//
//   rung 0  knob control on the chosen policy (u moves the policy's knob); with an expert tier (expert_tier, e.g.
//           "fp8"), a second rung-0 level: the same knob control with the routed experts at that tier, which every
//           level below keeps (the run switches the experts' precision on entering and leaving it)
//   rung 1  top-1 routing
//   rung 2  top-1 with the most expensive experts masked, one more expert per level (1, 2, …, max_masked; never
//           all): per layer, experts in descending cost c_e = a_e / n + b_e (core/expert_costs.h per_token_cost
//           of layer_costs[l] at n = tokens_per_step), ties toward the lower index
//   rung 3  rung 2's deepest mask (or top-1 without costs) with smaller batches, one level per batch_scales entry
//           (½, then ¼). On these levels u moves the batch share continuously, from the level above's share at
//           u = 0 (where the level above left off) to the level's own at u = 1, so the PI loop holds a target
//           between two shares instead of straddling it.
// Levels number these positions 0, 1, 2, …; a move is always one level. u acts on rungs 0 and 3, not on 1 and 2.
//
// Down one level when u has been saturated at 1 for `dwell` consecutive steps and the measurement is still
// above target (or the thermal guard reports its floor at maximum and still heating). A descent under way goes
// on faster: right after a move down, while every step since has been saturated and above target, the next move
// down needs only `dwell_next` such steps (the level reached has been seen not to be enough; a thermal cause,
// slow to show, keeps the full dwell).
//
// Up one level when u has been below u_up (on a batch level: at 0) for `dwell_up` consecutive steps (headroom
// returned) and the level above is predicted to fit: ≤ target·(1 − climb_margin). From a batch level at u = 0
// the level above's cheapest end is the same state, so the prediction is the measurement. Elsewhere the ladder
// remembers the last measurement at every level (at rung 0 only with u at 1, the state it left) and predicts the
// level above as y_now · memory[above] / memory[here]. Without the prediction, a target between two levels would
// make the ladder cycle between them.
//
// Where u restarts after a move (the caller does it): at 1 after a climb, the cheapest end of the level above,
// the state the prediction is about; at 0 (or the thermal floor) after a move down into a batch level, its
// dearest end, the share just left.
//
// Each move is kept as a LadderEvent (and logged) with its reason.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/expert_costs.h"

namespace wattmoe {

struct LadderConfig {
  bool enabled = true;
  int dwell = 8;               // ≥ 1 steps at u = 1 and above target before going down
  int dwell_next = 2;          // ≥ 1 (dwell if larger): the same during a descent under way (above)
  int dwell_up = 8;            // ≥ 1 steps with u < u_up before going up
  double u_up = 0.3;           // in (0, 1)
  double climb_margin = 0.02;  // in [0, 0.5): predicted level above must be this far under the target
  bool top1 = true;            // include rung 1
  int max_masked = -1;         // rung 2 depth; -1 = E/2; in [0, E−1]
  std::vector<ExpertCosts> layer_costs;  // [layers], E entries each, finite ≥ 0 (energy/'s); empty = no rung 2
  int64_t tokens_per_step = 1;           // ≥ 1: n of the ranking's a_e / n + b_e
  std::vector<double> batch_scales = {0.5, 0.25};  // rung 3, strictly decreasing, each in (0, 1)
  std::string expert_tier;  // "" = none; else the tier level's routed-expert precision (a name the run knows)
};

void validate(const LadderConfig& c, int num_experts, const std::string& where = "degradation ladder");

struct LadderLevel {
  int rung = 0;
  int masked = 0;                 // experts masked per layer
  double batch_scale = 1.0;       // the share of the batch let through at u = 1 (on every rung but 3: at any u)
  double batch_scale_u0 = 1.0;    // rung 3: the share at u = 0 (the level above's at u = 1); else batch_scale
  std::string expert_tier;        // "" = the run's own; else the routed experts' precision on this level
  double share(double u) const { return batch_scale_u0 + u * (batch_scale - batch_scale_u0); }  // u in [0, 1]
  bool effort_acts() const { return rung == 0 || rung == 3; }
};

struct LadderEvent {
  int64_t step = 0;
  int from_level = 0, to_level = 0;
  int from_rung = 0, to_rung = 0;
  std::string reason;
};

// What one update asks of the ladder.
struct LadderInput {
  int64_t step = 0;
  double u = 0;         // the effort just computed (after the floor)
  double measured = 0;  // the measurement of the step that just ended (it ran at the current level)
  double target = 1;
  bool above_target = false;  // measured above target beyond the controller's deadband
  bool thermal_critical = false;
  const char* unit = "W";
};

class DegradationLadder {
 public:
  DegradationLadder(LadderConfig c, int num_experts);

  // Returns +1 (went down a level: cheaper), −1 (went up) or 0; the caller restarts u as the header says.
  int update(const LadderInput& in);

  int level() const { return level_; }
  int num_levels() const { return int(levels_.size()); }
  const LadderLevel& current() const { return levels_[size_t(level_)]; }
  const std::vector<LadderLevel>& levels() const { return levels_; }
  const std::vector<LadderEvent>& events() const { return events_; }
  // Per-layer masks of the current level ([layers][E], true = pruned); empty when nothing is masked.
  std::vector<std::vector<bool>> masks() const;
  // The experts masked first in each layer (most expensive first), for tests and reports.
  const std::vector<std::vector<int>>& mask_order() const { return order_; }

 private:
  LadderConfig c_;
  int E_;
  std::vector<LadderLevel> levels_;
  std::vector<std::vector<int>> order_;
  std::map<int, double> memory_;  // level → last measurement there
  int level_ = 0;
  int high_steps_ = 0, low_steps_ = 0;
  bool descending_ = false;  // the last move was down and every step since was saturated and above target
  double u_prev_ = 0;
  std::vector<LadderEvent> events_;
};

}  // namespace wattmoe
