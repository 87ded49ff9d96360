// Triggers: which windows of a stream adapt. Every enabled trigger is evaluated on every window and the window adapts
// when ANY fires (the reasons are reported joined by '|', in the order below).
//   always       every window
//   every=N      windows 0, N, 2N, … of the stream
//   power        the window's sensor Sample has power_w > power_above_w
//   thermal      the Sample has thermal_margin_c < thermal_margin_below_c, or clock-event bits in clock_event_mask
//                (e.g. kThermalClockEvents) set in clock_event_reasons; a missing Sample or a NaN field never fires
//   drift        a drift alarm (Page-Hinkley, see adapt/page_hinkley.h) opens a burst: the alarm window and the next
//                drift_burst − 1 windows fire
//   complexity   the window's loss (nats/token, scored before adapting) exceeds complexity_factor × the EMA of the
//                earlier windows' losses (EMA: ema ← (1 − α)·ema + α·loss, α = complexity_alpha; the first window only
//                seeds it)
//   adaptive     fires when `interval` windows have passed since it last fired (interval starts at 1: every window).
//                After each adaptation the caller reports the relative loss gain it bought (report_gain); while the
//                gain is below adaptive_min_gain the interval doubles, up to adaptive_max_interval; a larger gain
//                keeps it. A drift alarm resets it to 1 (and fires).
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "energy/sensor.h"

namespace wattmoe {

inline constexpr uint64_t kThermalClockEvents = ClockEvent::kSwThermalSlowdown | ClockEvent::kHwThermalSlowdown;

struct TriggerConfig {
  bool always = false;
  int every = 0;                                                          // 0 = off; ≥ 1
  double power_above_w = std::numeric_limits<double>::quiet_NaN();        // NaN = off; > 0
  double thermal_margin_below_c = std::numeric_limits<double>::quiet_NaN();  // NaN = off; finite
  uint64_t clock_event_mask = 0;                                          // 0 = off
  bool on_drift = false;
  int drift_burst = 8;                                                    // ≥ 1
  double complexity_factor = 0;                                           // 0 = off; ≥ 1
  double complexity_alpha = 0.1;                                          // (0, 1]
  bool adaptive = false;
  int adaptive_max_interval = 64;                                         // ≥ 1
  double adaptive_min_gain = 0.005;                                       // relative loss gain, finite
  bool any_enabled() const;
};
void validate_triggers(const TriggerConfig& c);  // Error naming the field and its valid range

struct TriggerInput {
  int64_t window = 0;        // index in the stream (0-based)
  double loss = 0;           // the window's nats/token, scored before adapting
  bool drift = false;        // a drift alarm on this window
  const Sample* sensor = nullptr;  // this window's reading, if any
};

struct TriggerDecision {
  bool fire = false;
  std::string reason;  // reasons that fired, joined by '|'; empty when none
};

class Triggers {
 public:
  explicit Triggers(TriggerConfig cfg = {});
  // Evaluates every trigger on one window and advances their state (burst, EMA, interval counter). Call once per
  // window, in stream order.
  TriggerDecision decide(const TriggerInput& in);
  // The relative loss gain (before − after) / before that the last adaptation bought (adaptive frequency).
  void report_gain(double gain);
  int interval() const { return interval_; }
  const TriggerConfig& config() const { return cfg_; }

 private:
  TriggerConfig cfg_;
  int burst_left_ = 0;
  std::optional<double> ema_;
  int interval_ = 1;
  int64_t since_fire_ = std::numeric_limits<int32_t>::max();  // windows since the adaptive trigger last fired
};

}  // namespace wattmoe
