#include "control/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate(const ControllerConfig& c) {
  validate(c.budget, "controller budget");
  validate(c.knobs, "controller knobs");
  validate(c.thermal, "controller thermal guard");
  validate(c.ladder, c.knobs.num_experts, "controller ladder");
  validate(c.gains, "controller plant gain");
}

PolicyKnobs ControlDecision::knobs_for_layer(int layer) const {
  PolicyKnobs k = knobs;
  if (layer_masks.empty()) return k;
  WATTMOE_REQUIRE(
      layer >= 0 && layer < int(layer_masks.size()),
      "control decision: layer {} has no expert mask: the ladder's layer_costs cover {} layers", layer,
      layer_masks.size());
  k.mask = layer_masks[size_t(layer)];
  return k;
}

namespace {
ControllerConfig checked(ControllerConfig c) {
  validate(c);
  return c;
}
}  // namespace

Controller::Controller(ControllerConfig c)
    : c_(checked(std::move(c))),
      pi_(c_.budget),
      guard_(c_.thermal),
      mapper_(c_.knobs),
      ladder_(c_.ladder, c_.knobs.num_experts),
      gain_(c_.gains),
      prev_k_(c_.knobs.model_k) {}

void Controller::set_target(double target) {
  pi_.set_target(target);
  c_.budget.target = target;
}

ControlDecision Controller::initial() const {
  ControlDecision d;
  d.policy = c_.knobs.policy;
  d.knobs = knobs_for_effort(c_.knobs, 0.0);
  d.reason = "initial: full quality";
  return d;
}

double Controller::held_level_floor(double measured) {
  if (!mapper_.discrete() || ladder_.level() != 0) return 0.0;
  if (prev_level_ == 0) k_memory_[prev_k_] = measured;
  const int k = mapper_.quantizer().k();
  if (k >= c_.knobs.model_k) return 0.0;
  const auto up = k_memory_.find(k + 1), here = k_memory_.find(k);
  if (up == k_memory_.end() || here == k_memory_.end() || here->second <= 0) return 0.0;
  const double predicted = measured * up->second / here->second;
  if (predicted <= pi_.target()) return 0.0;
  // Just past the switch point, so rounding cannot move k up.
  return std::min(1.0, mapper_.quantizer().hold_effort() + 1e-9);
}

ControlDecision Controller::update(const ControlInput& in) {
  WATTMOE_REQUIRE(!started_ || in.step > last_step_,
                  "controller: step index {} after step {}: expected strictly increasing step indices",
                  in.step, last_step_);
  WATTMOE_REQUIRE(std::isfinite(in.dt_s) && in.dt_s > 0,
                  "controller: step {}: dt_s = {}: expected seconds > 0", in.step, in.dt_s);
  const Measure m = c_.budget.measure;
  const double y = m == Measure::Power ? in.power_w : in.joules_per_token;
  WATTMOE_REQUIRE(std::isfinite(y) && y >= 0,
                  "controller: step {}: {} = {}: expected a finite measurement >= 0 (the budget is in {})",
                  in.step, m == Measure::Power ? "power_w" : "joules_per_token", y, measure_unit(m));
  started_ = true;
  last_step_ = in.step;

  double thermal_floor = guard_.floor();
  if (c_.thermal.enabled && in.sample) thermal_floor = guard_.update(*in.sample, in.dt_s);
  const double held = held_level_floor(y);
  const double lo = std::max(thermal_floor, held);
  std::string retuned;
  if (c_.gains.adapt) {  // the step just measured ran at pi_.u() on the ladder's current level
    if (ladder_.level() != gain_level_) gain_.reset(), gain_level_ = ladder_.level();
    gain_.add(pi_.u(), y);
    // The trusted slope, else the strongest plant the data allow (stable for any weaker one).
    const std::optional<double> slope = gain_.slope(), bound = slope ? std::nullopt : gain_.gain_bound();
    if (slope || bound) {
      PiGains g = gains_for_plant(slope ? *slope : -*bound, pi_.target(), c_.gains.alpha);
      g.ki = std::clamp(g.ki, c_.gains.ki_min, c_.gains.ki_max), g.kp = g.ki / 4;
      if (g.ki != pi_.config().ki)
        retuned = fmt::format("; gains ki {:.3g} kp {:.3g} ({} {:.4g} {})", g.ki, g.kp,
                              slope ? "dy/du" : "|dy/du| at most", slope ? *slope : *bound, measure_unit(m));
      pi_.set_gains(g);
    }
  }
  double u = pi_.update(y, lo);

  LadderInput li;
  li.step = in.step;
  li.u = u;
  li.measured = y;
  li.target = pi_.target();
  li.above_target = pi_.error() > c_.budget.deadband;
  li.thermal_critical = guard_.critical();
  li.unit = measure_unit(m);
  const size_t events_before = ladder_.events().size();
  const int moved = ladder_.update(li);  // where u restarts after a move: the ladder's header
  if (moved < 0) pi_.reset(u = 1.0);
  if (moved > 0 && ladder_.current().rung == 3) pi_.reset(u = lo);

  ControlDecision d = decide(in.step, u, lo, thermal_floor);
  d.measured = y;
  d.error = pi_.error();
  d.reason = fmt::format("{} {:.4g} {} vs target {:.4g} ({:+.1f}%): u {:.3f}", measure_name(m), y,
                         measure_unit(m), pi_.target(), 100.0 * pi_.error(), d.u);
  if (thermal_floor > 0)
    d.reason += fmt::format("; thermal floor {:.3f} (margin {:.2f} C, predicted {:.2f} C{})", thermal_floor,
                            guard_.margin_c(), guard_.predicted_margin_c(),
                            guard_.reason_bit_seen() ? ", throttle bit seen" : "");
  if (held > 0) d.reason += fmt::format("; k held at {}: k+1 predicted over target", mapper_.quantizer().k());
  if (ladder_.events().size() > events_before) d.reason += "; ladder " + ladder_.events().back().reason;
  d.reason += retuned;
  return d;
}

ControlDecision Controller::decide(int64_t step, double u, double floor, double thermal_floor) {
  ControlDecision d;
  d.step = step;
  d.u = u;
  d.floor = floor;
  d.thermal_floor = thermal_floor;
  d.thermal_active = thermal_floor > 0;
  d.level = ladder_.level();
  const LadderLevel& lv = ladder_.current();
  d.rung = lv.rung;
  d.batch_scale = lv.share(u);
  d.expert_tier = lv.expert_tier;
  if (lv.rung == 0) {
    d.policy = c_.knobs.policy;
    d.knobs = mapper_.map(u);
  } else {
    d.policy = lv.masked > 0 ? "mask" : "topk";
    d.knobs.k_max = 1;
    d.layer_masks = ladder_.masks();
  }
  prev_level_ = d.level;
  prev_k_ = d.knobs.k_max > 0 ? d.knobs.k_max : c_.knobs.model_k;
  return d;
}

}  // namespace wattmoe
