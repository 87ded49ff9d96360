// PlantGainEstimator: the plant's gain dy/du where the controller runs, measured from the controller's own steps,
// so the PI loop's gains can follow the plant (gains_for_plant, control/budget_controller.h) instead of assuming
// one. A least-squares line through the last `window` pairs (u applied during a step, y that step measured); the
// slope is reported only when it is trustworthy: at least `min_points` pairs, their u spread (max − min) at least
// `min_u_spread`, the slope negative (more effort must cost less: a positive or flat fit is noise), and at least
// `min_t` standard errors from zero. When the slope is not trustworthy but u did move (the points and the spread are
// there), gain_bound() gives the largest |dy/du| the data allow, |min(slope, 0)| + min_t·SE: gains set from it keep the
// loop stable for any plant at most that strong, so a plant too weak to measure still gets gains faster than the
// defaults' assumption. reset() forgets the pairs (the ladder changed rung: another plant).
#pragma once
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace wattmoe {

struct PlantGainConfig {
  bool adapt = false;         // estimate dy/du and retune the PI gains from it (else the configured gains stay)
  int window = 12;            // ≥ min_points: pairs kept
  int min_points = 6;         // ≥ 3
  double min_u_spread = 0.05; // in (0, 1]
  double min_t = 2.0;         // > 0: |slope| / its standard error
  double alpha = 0.4;         // gains_for_plant's error fraction removed per step, in (0, 1]
  double ki_min = 0.2, ki_max = 8.0;  // 0 < ki_min ≤ ki_max: the retuned ki is clamped here (kp = ki / 4)
};

// Error naming `where` and the field for a value out of range.
void validate(const PlantGainConfig& c, const std::string& where = "plant gain estimator");

class PlantGainEstimator {
 public:
  explicit PlantGainEstimator(PlantGainConfig c = {});
  void add(double u, double y);  // non-finite values are ignored
  void reset();
  std::optional<double> slope() const;  // dy/du, negative, or nothing when not trustworthy (header comment)
  std::optional<double> gain_bound() const;  // upper bound on |dy/du| (> 0), or nothing without points or spread
  int size() const { return int(pts_.size()); }

 private:
  struct Fit {
    double slope = 0, se = 0;
  };
  std::optional<Fit> fit() const;  // the least-squares line, when there are min_points and min_u_spread
  PlantGainConfig c_;
  std::deque<std::pair<double, double>> pts_;
};

}  // namespace wattmoe
