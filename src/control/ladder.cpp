#include "control/ladder.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/log.h"

namespace wattmoe {

namespace {

int resolved_max_masked(const LadderConfig& c, int E) {
  return c.max_masked < 0 ? E / 2 : c.max_masked;
}

std::string level_str(const LadderLevel& l) {
  switch (l.rung) {
    case 0:
      return l.expert_tier.empty() ? "rung 0 (knob control)"
                                   : fmt::format("rung 0 (knob control, {} experts)", l.expert_tier);
    case 1:
      return "rung 1 (top-1)";
    case 2:
      return fmt::format("rung 2 (top-1, {} expert{} masked per layer)", l.masked, l.masked == 1 ? "" : "s");
    default:
      return fmt::format("rung 3 (top-1, {} masked, batch x{} to x{} by effort)", l.masked, l.batch_scale_u0,
                         l.batch_scale);
  }
}

}  // namespace

void validate(const LadderConfig& c, int E, const std::string& where) {
  WATTMOE_REQUIRE(E >= 1, "{}: num_experts = {}: expected E >= 1", where, E);
  WATTMOE_REQUIRE(c.dwell >= 1, "{}: dwell = {}: expected >= 1 steps", where, c.dwell);
  WATTMOE_REQUIRE(c.dwell_next >= 1, "{}: dwell_next = {}: expected >= 1 steps", where, c.dwell_next);
  WATTMOE_REQUIRE(c.dwell_up >= 1, "{}: dwell_up = {}: expected >= 1 steps", where, c.dwell_up);
  WATTMOE_REQUIRE(c.u_up > 0 && c.u_up < 1, "{}: u_up = {}: expected an effort in (0, 1)", where, c.u_up);
  WATTMOE_REQUIRE(c.climb_margin >= 0 && c.climb_margin < 0.5, "{}: climb_margin = {}: expected [0, 0.5)",
                  where, c.climb_margin);
  WATTMOE_REQUIRE(c.max_masked >= -1 && c.max_masked <= E - 1,
                  "{}: max_masked = {}: expected 0..E-1 = {} (never all experts), or -1 for E/2", where,
                  c.max_masked, E - 1);
  WATTMOE_REQUIRE(c.tokens_per_step >= 1, "{}: tokens_per_step = {}: expected >= 1", where, c.tokens_per_step);
  for (size_t l = 0; l < c.layer_costs.size(); ++l) {
    for (const auto& [name, v] : {std::pair{"fixed", &c.layer_costs[l].fixed},
                                  std::pair{"per_token", &c.layer_costs[l].per_token}}) {
      WATTMOE_REQUIRE(int64_t(v->size()) == E,
                      "{}: layer_costs[{}].{} has {} entries: expected one per expert (E = {})", where, l, name,
                      v->size(), E);
      for (size_t e = 0; e < v->size(); ++e)
        WATTMOE_REQUIRE(std::isfinite((*v)[e]) && (*v)[e] >= 0,
                        "{}: layer_costs[{}].{}[{}] = {}: expected finite >= 0", where, l, name, e, (*v)[e]);
    }
  }
  for (size_t i = 0; i < c.batch_scales.size(); ++i) {
    const double s = c.batch_scales[i];
    WATTMOE_REQUIRE(s > 0 && s < 1, "{}: batch_scales[{}] = {}: expected a fraction in (0, 1)", where, i, s);
    WATTMOE_REQUIRE(i == 0 || s < c.batch_scales[i - 1],
                    "{}: batch_scales[{}] = {}: expected strictly decreasing scales (previous {})", where, i,
                    s, c.batch_scales[i - 1]);
  }
}

DegradationLadder::DegradationLadder(LadderConfig c, int num_experts) : c_(std::move(c)), E_(num_experts) {
  validate(c_, E_);
  levels_.push_back({0, 0, 1.0});
  if (!c_.enabled) return;
  if (!c_.expert_tier.empty()) levels_.push_back({0, 0, 1.0});  // knob control again, at the tier (below)
  if (c_.top1) levels_.push_back({1, 0, 1.0});
  int deepest = 0;
  if (!c_.layer_costs.empty()) {
    for (const ExpertCosts& layer : c_.layer_costs) {
      const std::vector<double> costs = per_token_cost(layer, c_.tokens_per_step);
      std::vector<int> idx(static_cast<size_t>(E_));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int a, int b) { return costs[size_t(a)] > costs[size_t(b)]; });
      order_.push_back(std::move(idx));
    }
    deepest = resolved_max_masked(c_, E_);
    for (int m = 1; m <= deepest; ++m) levels_.push_back({2, m, 1.0});
  }
  double above = 1.0;
  for (double s : c_.batch_scales) levels_.push_back({3, deepest, s, above}), above = s;
  for (size_t i = 1; i < levels_.size(); ++i) levels_[i].expert_tier = c_.expert_tier;  // every level below 0
}

std::vector<std::vector<bool>> DegradationLadder::masks() const {
  const int m = current().masked;
  if (m == 0) return {};
  std::vector<std::vector<bool>> out;
  for (const auto& order : order_) {
    std::vector<bool> mask(size_t(E_), false);
    for (int i = 0; i < m; ++i) mask[size_t(order[size_t(i)])] = true;
    out.push_back(std::move(mask));
  }
  return out;
}

int DegradationLadder::update(const LadderInput& in) {
  // The step that just ended ran at level_ with u_prev_.
  if (!current().effort_acts() || u_prev_ >= 1.0) memory_[level_] = in.measured;
  u_prev_ = in.u;
  if (levels_.size() == 1) return 0;

  const bool saturated = in.u >= 1.0;
  high_steps_ = saturated && (in.above_target || in.thermal_critical) ? high_steps_ + 1 : 0;
  descending_ = descending_ && saturated && in.above_target;
  // On a batch level u must be at 0: there the share is the level above's cheapest end, so the climb changes nothing.
  const bool batch = current().rung == 3, low = batch ? in.u <= 0.0 : in.u < c_.u_up;
  low_steps_ = level_ > 0 && low && !in.thermal_critical ? low_steps_ + 1 : 0;

  auto move = [&](int to, std::string why) {
    LadderEvent ev{
        in.step,
        level_,
        to,
        levels_[size_t(level_)].rung,
        levels_[size_t(to)].rung,
        fmt::format("{} to {}: {}", to > level_ ? "down" : "up", level_str(levels_[size_t(to)]), why)};
    log_info("control: step {}: ladder {}", in.step, ev.reason);
    events_.push_back(std::move(ev));
    descending_ = to > level_;
    level_ = to;
    high_steps_ = low_steps_ = 0;
  };
  const double rel = (in.measured - in.target) / in.target * 100.0;

  const int dwell_down = descending_ ? std::min(c_.dwell_next, c_.dwell) : c_.dwell;
  if (high_steps_ >= dwell_down && level_ + 1 < int(levels_.size())) {
    const std::string why =
        in.above_target
            ? fmt::format("u at 1 for {} steps and {:.4g} {} is above target {:.4g} {} ({:+.1f}%)",
                          high_steps_, in.measured, in.unit, in.target, in.unit, rel)
            : fmt::format("u at 1 for {} steps and the thermal guard's floor is at maximum, still heating",
                          high_steps_);
    move(level_ + 1, why);
    if (current().rung == 3) u_prev_ = 0.0;  // the caller restarts u at its dearest end there
    return +1;
  }
  if (low_steps_ >= c_.dwell_up) {
    const auto above = memory_.find(level_ - 1), here = memory_.find(level_);
    double predicted = in.measured;
    if (!batch && above != memory_.end() && here != memory_.end() && here->second > 0)
      predicted = in.measured * above->second / here->second;
    if (predicted <= in.target * (1.0 - c_.climb_margin)) {
      const std::string u_low = batch ? std::string("at 0") : fmt::format("below {}", c_.u_up);
      move(level_ - 1, fmt::format("u {} for {} steps and {:.4g} {} now predicts {:.4g} {} there, within target "
                                   "{:.4g} {}",
                                   u_low, low_steps_, in.measured, in.unit, predicted, in.unit, in.target, in.unit));
      u_prev_ = 1.0;  // the caller resets u to 1 on a climb
      return -1;
    }
  }
  return 0;
}

}  // namespace wattmoe
