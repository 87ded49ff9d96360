// PlantGainEstimator: the plant's gain dy/du where the controller runs, measured from the controller's own steps,
// so the PI loop's gains can follow the plant (gains_for_plant, control/budget_controller.h) instead of assuming
// one. A least-squares line through the last `window` pairs (u applied during a step, y that step measured); the
// slope is reported only when it is trustworthy: at least `min_points` pairs, their u spread (max − min) at least
// `min_u_spread`, the slope negative (more effort must cost less: a positive or flat fit is noise), and at least
// `min_t` standard errors from zero. reset() forgets the pairs (the ladder changed rung: another plant).
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
  int size() const { return int(pts_.size()); }

 private:
  PlantGainConfig c_;
  std::deque<std::pair<double, double>> pts_;
};

}  // namespace wattmoe
