// ThermalGuard: raises a floor on the effort u before the hardware would throttle for heat.
//
// From each Sample it takes the thermal margin m (°C left before thermal slowdown: Sample::thermal_margin_c,
// or slowdown_temp_c − gpu_temp_c when the sensor only reports the temperature), fits the slope dm/dt by
// least squares over the samples of the last slope_window_s seconds (once they span min_fit_span_s), and predicts
// the margin lookahead_s ahead:
//   m̂ = m + (dm/dt)·lookahead_s
// The floor follows m* = min(m, m̂) — the worse of now and the prediction, so heating raises it early and a
// cooling trend does not release it early — on a smooth ramp (smoothstep, C¹ at both ends):
//   f(m*) = 0 for m* ≥ margin_start_c,  floor_max for m* ≤ margin_full_c,  smooth in between
// and moves with hysteresis: it rises at once to f(m*); it falls only toward f(m* − release_hysteresis_c)
// (the floor a margin that much smaller would give) and at most decay_per_s per second. A thermal clock-event
// bit in the sample (hw_slowdown 0x8, sw_thermal 0x20, hw_thermal 0x40) means the hardware is already
// throttling: the floor jumps to at least jump_floor.
//
// Units: temperatures and margins in °C, times in s (Sample::time_s when finite, else the sum of the dt
// passed in). A sample without temperature or margin leaves the floor to the reason bits and its decay.
#pragma once
#include <cstdint>
#include <deque>
#include <limits>
#include <string>

#include "energy/sensor.h"

namespace wattmoe {

struct ThermalConfig {
  bool enabled = true;
  double lookahead_s = 10;            // > 0: how far ahead the margin is predicted
  double slope_window_s = 5;          // > 0: samples this recent fit the slope
  double min_fit_span_s = 0;          // in [0, slope_window_s]: extrapolate only once the samples span this long
                                      // (a real GPU's temperature jumps ~9 °C in 0.25 s at load onset and swings
                                      // ±5 °C within a step; a fit over a fraction of a second turns that into a
                                      // slope that predicts throttling tens of degrees early)
  double margin_start_c = 6;          // predicted margin where the floor starts rising
  double margin_full_c = 1;           // predicted margin where the floor reaches floor_max (< margin_start_c)
  double floor_max = 1.0;             // in (0, 1]
  double jump_floor = 1.0;            // floor on a thermal reason bit, in [0, 1]
  double release_hysteresis_c = 1.5;  // ≥ 0: extra margin needed before the floor falls
  double decay_per_s = 0.05;          // > 0: fastest fall of the floor, u per second
  double slowdown_temp_c =
      std::numeric_limits<double>::quiet_NaN();  // used when samples lack thermal_margin_c
};

void validate(const ThermalConfig& c, const std::string& where = "thermal guard");

inline constexpr uint64_t kThermalReasonBits =
    ClockEvent::kHwSlowdown | ClockEvent::kSwThermalSlowdown | ClockEvent::kHwThermalSlowdown;

// Smoothstep ramp of the floor over the predicted margin (exposed for tests).
double thermal_floor_for_margin(const ThermalConfig& c, double predicted_margin_c);

class ThermalGuard {
 public:
  explicit ThermalGuard(ThermalConfig c);

  // One step: dt seconds since the previous update (> 0), the sample read at its end. Returns the floor.
  double update(const Sample& s, double dt);

  double floor() const { return floor_; }
  bool active() const { return floor_ > 0; }
  // The floor is at floor_max and the predicted margin is still at or below margin_full_c: effort alone is
  // not enough (the ladder may go down a rung for this).
  bool critical() const;
  double margin_c() const { return margin_; }  // NaN before any sample with thermal data
  double predicted_margin_c() const { return predicted_; }
  double slope_c_per_s() const { return slope_; }     // dm/dt (negative while heating)
  bool reason_bit_seen() const { return bit_seen_; }  // in the last sample
  const ThermalConfig& config() const { return c_; }

 private:
  ThermalConfig c_;
  std::deque<std::pair<double, double>> hist_;  // (time, margin)
  double clock_ = 0;
  double floor_ = 0;
  double margin_ = std::numeric_limits<double>::quiet_NaN();
  double predicted_ = std::numeric_limits<double>::quiet_NaN();
  double slope_ = 0;
  bool bit_seen_ = false;
};

}  // namespace wattmoe
