// BudgetController: a discrete-time PI loop from one measured quantity to a continuous effort u ∈ [lo, 1].
//
//   measured y   power in W over the last step (or window), or energy per token in J/token
//   (BudgetConfig::measure) error e      (y − target) / target: relative, so the gains are dimensionless and
//   the same for W and J/token effort u     0 = full quality (the model's own top-k), 1 = the cheapest the
//   current ladder rung allows;
//                lo ≥ 0 is a floor set from outside each step (thermal guard, a held discrete level)
//
// One update per step (positional form):
//   e_d  = sign(e)·max(|e| − deadband, 0)          measurement noise inside ±deadband does not move u
//   v    = kp·e_d + I                               unsaturated command
//   u    = clamp(v, lo, 1), then |u − u_prev| ≤ max_du (rate limit)
//   I   += ki·e_d                                   unless anti-windup stops it (below)
// Anti-windup: Conditional integration skips the integral update whenever u was clipped (by [lo, 1] or the
// rate limit) and e_d pushes further in the clipped direction; BackCalculation integrates and adds kb·(u −
// v), which bleeds the integral back toward what was applied; None integrates always (kept to show the
// difference).
//
// Choosing the gains. Each step applies u for one step and then measures it, so near an operating point the
// loop sees a static plant with a one-step delay:  e_{n+1} = e_0 − γ·u_n,  γ = |dy/du| / target (how many
// target-sized units the measurement moves from u = 0 to u = 1). With a = kp·γ and b = ki·γ the error obeys
//   e_{n+1} = (1 − a − b)·e_n + a·e_{n−1},
// stable for b > 0 and b + 2a < 2; a = 0, b = 1 is dead-beat, and proportional action adds a negative
// (alternating) root, so kp stays small. gains_for_plant(dy/du, target) returns ki = α/γ, kp = ki/4 with α =
// 0.4 (b = 0.4, a = 0.1: roots 0.65 and −0.15, error ×0.65 per step, stable while the true γ is up to 3.3×
// the one assumed — plants are not linear in u, so the margin matters). Measure dy/du once by holding u at 0
// and at 1 for a few steps each. The defaults (kp = 0.2, ki = 0.8) are that rule for γ ≈ 0.5 — u moving the
// measurement by about half the target. On the simulated Mixtral plant (γ ≈ 0.4 at 400 W) they settle a step
// change within ±5 % in ≤ 5 steps.
#pragma once
#include <cstdint>
#include <string>

namespace wattmoe {

enum class Measure { Power, JoulesPerToken };
enum class AntiWindup { Conditional, BackCalculation, None };

const char* measure_name(Measure m);         // "power" / "joules_per_token"
const char* measure_unit(Measure m);         // "W" / "J/token"
const char* anti_windup_name(AntiWindup a);  // "conditional" / "back_calculation" / "none"

struct BudgetConfig {
  Measure measure = Measure::Power;
  double target = 0;       // W or J/token; > 0 and finite (required, no default)
  double kp = 0.2;         // u per unit of relative error, ≥ 0
  double ki = 0.8;         // u per unit of relative error per step, > 0
  double deadband = 0.02;  // relative error ignored, in [0, 0.5)
  double max_du = 1.0;     // largest change of u in one step, in (0, 1]; 1 = no rate limit
  AntiWindup anti_windup = AntiWindup::Conditional;
  double kb = 1.0;  // back-calculation gain per step, in (0, 1]; used only with BackCalculation
};

// Error naming `where` and the field when a value is NaN, infinite or out of range.
void validate(const BudgetConfig& c, const std::string& where = "budget controller");

struct PiGains {
  double kp = 0, ki = 0;
};
// The tuning rule above from a measured plant gain dy/du (W or J/token per unit u; its sign is ignored) at
// `target`. alpha ∈ (0, 1] is the fraction of the error removed per step (0.4 by default). Error on zero/NaN
// inputs.
PiGains gains_for_plant(double dy_du, double target, double alpha = 0.4);

class BudgetController {
 public:
  explicit BudgetController(BudgetConfig c);

  // One step: the measured y (same unit as the target) and the lower limit lo ∈ [0, 1] for u. Returns u.
  double update(double measured, double lo = 0);
  void set_target(double target);  // a step change at run time; Error unless > 0 and finite
  // Sets u (and the integral so that the next step starts there): used when the ladder changes rung.
  void reset(double u);
  // New gains from here on (the integral and u stay): the plant's gain was measured (control/plant_gain.h).
  // Error unless kp >= 0 and ki > 0, both finite.
  void set_gains(const PiGains& g);

  double target() const { return c_.target; }
  double u() const { return u_; }
  double error() const { return e_; }  // relative error of the last update (before the deadband)
  double integral() const { return i_; }
  bool saturated_high() const { return u_ >= 1.0; }
  const BudgetConfig& config() const { return c_; }

 private:
  BudgetConfig c_;
  double u_ = 0, i_ = 0, e_ = 0;
};

}  // namespace wattmoe
