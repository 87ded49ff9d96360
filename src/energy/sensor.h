// PowerSensor: one interface for every source of power/energy/thermal readings (NVML, the simulated GPU, a
// replayed trace, CPU RAPL). A sensor fills one Sample per read(); a field it cannot provide stays NaN (or
// empty), and capabilities() says up front which fields are real, so callers never mistake 0 for a reading.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wattmoe {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Sample {
  double time_s = kNaN;        // on the sensor's clock (PowerSensor::now())
  double power_w = kNaN;       // instant board power
  double power_avg_w = kNaN;   // the driver's smoothed power (NVML: a 1 s average)
  double energy_j = kNaN;      // cumulative energy counter (coarse: see Capabilities::counter_tick_s)
  double gpu_temp_c = kNaN;
  double mem_temp_c = kNaN;
  double sm_clock_mhz = kNaN;
  double mem_clock_mhz = kNaN;
  std::optional<uint64_t> clock_event_reasons;  // NVML clocks-event reason bits (ClockEvent)
  std::optional<uint64_t> mem_used_bytes;
  std::optional<uint64_t> mem_total_bytes;
  double power_limit_w = kNaN;     // the enforced limit (read only; we never set it)
  double thermal_margin_c = kNaN;  // degrees left before thermal slowdown

  // Bitwise equality, NaN == NaN (what replay exactness means).
  bool same_as(const Sample& o) const;
};

// Which Sample fields a sensor provides, and how its clock and counter behave.
struct Capabilities {
  bool power = false, power_avg = false, energy = false, gpu_temp = false, mem_temp = false;
  bool sm_clock = false, mem_clock = false, clock_event_reasons = false, memory = false;
  bool power_limit = false, thermal_margin = false;
  // True when now() is virtual time that only moves when the caller drives the device (the simulator, a replay):
  // the meter then samples synchronously instead of on a thread.
  bool virtual_time = false;
  double counter_tick_s = 0;  // how often energy_j changes (NVML ~0.1 s); 0 = unknown or continuous
  double counter_wrap_j = 0;  // energy_j wraps to 0 after this many joules; 0 = never wraps
};
std::string capabilities_str(const Capabilities& c);  // "power energy gpu_temp ..." (available fields)

// The energy a counter says was used between two of its readings: now_j − prev_j, plus wrap_j once when the counter
// wrapped (wrap_j > 0: Capabilities::counter_wrap_j); NaN when it went backwards with no known wrap (a reset). The one
// unwrapping rule of the live meter (energy/meter.h) and of replayed totals (energy/trace.h CounterTotal).
inline double counter_step(double prev_j, double now_j, double wrap_j) {
  double d = now_j - prev_j;
  if (d < 0 && wrap_j > 0) d += wrap_j;
  return d < 0 ? std::numeric_limits<double>::quiet_NaN() : d;
}

class PowerSensor {
 public:
  virtual ~PowerSensor() = default;
  virtual std::string name() const = 0;
  virtual Capabilities capabilities() const = 0;
  // One reading now. Throws wattmoe::Error naming the failed call when the device faults.
  virtual Sample read() = 0;
  // The clock Sample::time_s is on (seconds; monotonic).
  virtual double now() = 0;
};

// NVML's clocks-event reasons (formerly "throttle reasons"), one bit each.
namespace ClockEvent {
inline constexpr uint64_t kGpuIdle = 0x1;
inline constexpr uint64_t kApplicationsClocksSetting = 0x2;
inline constexpr uint64_t kSwPowerCap = 0x4;
inline constexpr uint64_t kHwSlowdown = 0x8;
inline constexpr uint64_t kSyncBoost = 0x10;
inline constexpr uint64_t kSwThermalSlowdown = 0x20;
inline constexpr uint64_t kHwThermalSlowdown = 0x40;
inline constexpr uint64_t kHwPowerBrakeSlowdown = 0x80;
inline constexpr uint64_t kDisplayClockSetting = 0x100;
}  // namespace ClockEvent

struct ClockEventReason {
  uint64_t bit;
  std::string_view name;
};
inline constexpr std::array<ClockEventReason, 9> kClockEventReasons = {{
    {ClockEvent::kGpuIdle, "gpu_idle"},
    {ClockEvent::kApplicationsClocksSetting, "applications_clocks_setting"},
    {ClockEvent::kSwPowerCap, "sw_power_cap"},
    {ClockEvent::kHwSlowdown, "hw_slowdown"},
    {ClockEvent::kSyncBoost, "sync_boost"},
    {ClockEvent::kSwThermalSlowdown, "sw_thermal_slowdown"},
    {ClockEvent::kHwThermalSlowdown, "hw_thermal_slowdown"},
    {ClockEvent::kHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
    {ClockEvent::kDisplayClockSetting, "display_clock_setting"},
}};

// Names of the set bits in table order; bits we do not know come last as "unknown(0x...)".
std::vector<std::string> clock_event_reason_names(uint64_t bits);
// The names joined by '|', or "none".
std::string clock_event_reasons_str(uint64_t bits);

}  // namespace wattmoe
