#include "control/budget_controller.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

const char* measure_name(Measure m) {
  return m == Measure::Power ? "power" : "joules_per_token";
}
const char* measure_unit(Measure m) {
  return m == Measure::Power ? "W" : "J/token";
}

const char* anti_windup_name(AntiWindup a) {
  switch (a) {
    case AntiWindup::Conditional:
      return "conditional";
    case AntiWindup::BackCalculation:
      return "back_calculation";
    case AntiWindup::None:
      return "none";
  }
  return "?";
}

void validate(const BudgetConfig& c, const std::string& where) {
  WATTMOE_REQUIRE(std::isfinite(c.target) && c.target > 0, "{}: target = {} {}: expected a finite budget > 0",
                  where, c.target, measure_unit(c.measure));
  WATTMOE_REQUIRE(std::isfinite(c.kp) && c.kp >= 0, "{}: kp = {}: expected a finite gain >= 0", where, c.kp);
  WATTMOE_REQUIRE(std::isfinite(c.ki) && c.ki > 0,
                  "{}: ki = {}: expected a finite gain > 0 (without integral action the budget is not held)",
                  where, c.ki);
  WATTMOE_REQUIRE(
      c.deadband >= 0 && c.deadband < 0.5,
      "{}: deadband = {}: expected a relative error in [0, 0.5) (0.02 = ignore errors within ±2%)", where,
      c.deadband);
  WATTMOE_REQUIRE(c.max_du > 0 && c.max_du <= 1,
                  "{}: max_du = {}: expected the largest change of u per step in (0, 1] (1 = no rate limit)",
                  where, c.max_du);
  WATTMOE_REQUIRE(c.kb > 0 && c.kb <= 1, "{}: kb = {}: expected a back-calculation gain in (0, 1]", where,
                  c.kb);
}

void BudgetController::set_gains(const PiGains& g) {
  WATTMOE_REQUIRE(std::isfinite(g.kp) && g.kp >= 0 && std::isfinite(g.ki) && g.ki > 0,
                  "budget controller: gains kp = {}, ki = {}: expected kp >= 0 and ki > 0", g.kp, g.ki);
  c_.kp = g.kp, c_.ki = g.ki;
}

PiGains gains_for_plant(double dy_du, double target, double alpha) {
  WATTMOE_REQUIRE(std::isfinite(dy_du) && dy_du != 0,
                  "gains_for_plant: plant gain dy/du = {}: expected a finite, non-zero measured slope",
                  dy_du);
  WATTMOE_REQUIRE(std::isfinite(target) && target > 0,
                  "gains_for_plant: target = {}: expected a finite value > 0", target);
  WATTMOE_REQUIRE(alpha > 0 && alpha <= 1,
                  "gains_for_plant: alpha = {}: expected the per-step error reduction in (0, 1]", alpha);
  const double gamma = std::abs(dy_du) / target;
  PiGains g;
  g.ki = alpha / gamma;
  g.kp = 0.25 * g.ki;
  return g;
}

BudgetController::BudgetController(BudgetConfig c) : c_(c) {
  validate(c_);
}

void BudgetController::set_target(double target) {
  WATTMOE_REQUIRE(std::isfinite(target) && target > 0,
                  "budget controller: target = {} {}: expected a finite budget > 0", target,
                  measure_unit(c_.measure));
  c_.target = target;
}

void BudgetController::reset(double u) {
  WATTMOE_CHECK(u >= 0 && u <= 1, "reset u = {}", u);
  u_ = u;
  i_ = u;  // with e = 0 the command is the integral
}

double BudgetController::update(double measured, double lo) {
  WATTMOE_REQUIRE(std::isfinite(measured) && measured >= 0,
                  "budget controller: measured {} = {} {}: expected a finite value >= 0",
                  measure_name(c_.measure), measured, measure_unit(c_.measure));
  WATTMOE_CHECK(lo >= 0 && lo <= 1, "lo = {}", lo);
  e_ = (measured - c_.target) / c_.target;
  const double ed = e_ > 0 ? std::max(e_ - c_.deadband, 0.0) : std::min(e_ + c_.deadband, 0.0);

  const double v = c_.kp * ed + i_;
  double u = std::clamp(v, lo, 1.0);
  u = std::clamp(u, u_ - c_.max_du, u_ + c_.max_du);
  u = std::clamp(u, lo, 1.0);  // a floor that jumped wins over the rate limit

  switch (c_.anti_windup) {
    case AntiWindup::None:
      i_ += c_.ki * ed;
      break;
    case AntiWindup::Conditional: {
      const double clip = u - v;  // > 0: held up (v below what was applied); < 0: held down
      const bool pushes_further = (clip < 0 && ed > 0) || (clip > 0 && ed < 0);
      if (!pushes_further) i_ += c_.ki * ed;
      break;
    }
    case AntiWindup::BackCalculation:
      i_ += c_.ki * ed + c_.kb * (u - v);
      break;
  }
  u_ = u;
  return u_;
}

}  // namespace wattmoe
