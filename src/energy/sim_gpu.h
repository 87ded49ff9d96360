// SimulatedGpu: a deterministic virtual-time model of a GPU's speed, power, clocks and temperature, so energy
// policies and the meter can be tested on a CPU machine. The engine reports the work it would launch; the model
// advances its own clock. Same sequence of calls → bitwise the same samples.
//
//   time(f)  = max(flops / (peak_flops·f/f_max), bytes / bandwidth) + launch_overhead
//   power(f) = idle_w + active_w + (pJ/FLOP·(f/f_max)^(k-1)·flops + pJ/byte·bytes) / time(f)
// The clock f starts at the thermal limit (f_max when cool); if power(f) exceeds power_limit_w, f is lowered
// (bisection) until it fits, stretching time (reason sw_power_cap). Temperature follows
// dT/dt = (P·R_th − (T − T_ambient)) / tau, integrated exactly over constant-power segments; above
// slowdown_temp_c the clock limit falls linearly (sw_thermal_slowdown), at hw_slowdown_temp_c it is cut to
// hw_slowdown_clock_fraction (hw_thermal_slowdown). The energy counter is an integer mJ value that only
// changes at multiples of counter_tick_s, like NVML's.
#pragma once
#include <array>
#include <cstdint>
#include <deque>
#include <string>

#include "energy/sensor.h"
#include "energy/sim_params.h"

namespace wattmoe {

struct Work {
  double flops = 0;
  double bytes = 0;
  std::string name;
};

// What the last run() did (ground truth for tests and profilers).
struct SimRunInfo {
  std::string name;
  double start_s = 0, seconds = 0, joules = 0;
  double min_sm_clock_mhz = 0;  // the lowest clock used during the run
  uint64_t reasons = 0;         // union of the clock-event bits during the run
};

class SimulatedGpu {
 public:
  // Bounds that keep every call O(1) per segment (a huge step period, --sim-streams or a tiny tick): simulated time
  // stays below kMaxSimSeconds (~31,700 years) and one run() below kMaxThermalSubsteps sub-steps; beyond, an Error.
  static constexpr double kMaxSimSeconds = 1e12;
  static constexpr double kMaxThermalSubsteps = 1e6;

  explicit SimulatedGpu(SimGpuParams p = {});

  double run(const Work& w);  // returns the simulated duration (s)
  void idle(double seconds);
  void set_memory_used(uint64_t bytes);

  double time() const { return t_; }
  double temperature_c() const { return temp_; }
  double true_energy_j() const { return energy_; }  // exact integral of power (the counter lags and rounds it)
  uint64_t energy_counter_mj() const { return counter_mj_; }
  double power_w() const { return power_; }          // power of the segment that just ended
  double sm_clock_mhz() const { return clock_mhz_; }
  uint64_t reasons() const { return reasons_; }
  // Seconds spent with each clock-event bit set, in kClockEventReasons order.
  const std::array<double, kClockEventReasons.size()>& reason_seconds() const { return reason_s_; }
  const SimRunInfo& last_run() const { return last_; }
  const SimGpuParams& params() const { return p_; }

  Sample sample() const;  // what a sensor would read now
  Capabilities capabilities() const;

  // Model pieces, exposed for tests and the analytic cost model's cross-checks.
  double work_seconds(const Work& w, double clock_fraction) const;
  double work_power_w(const Work& w, double clock_fraction) const;

 private:
  struct Limit {
    double fraction;
    uint64_t reasons;
  };
  Limit thermal_limit() const;
  void advance(double dt, double power, double clock_mhz, uint64_t reasons);
  double energy_at(double t) const;  // exact true energy at a past time within the average window

  SimGpuParams p_;
  double t_ = 0, temp_ = 0, energy_ = 0, power_ = 0, clock_mhz_ = 0;
  uint64_t reasons_ = ClockEvent::kGpuIdle;
  uint64_t counter_mj_ = 0;
  int64_t next_tick_ = 1;  // index of the next counter update (at next_tick_·counter_tick_s)
  uint64_t mem_used_ = 0;
  std::deque<std::pair<double, double>> history_;  // (time, true energy) at segment ends, for power_avg_w
  std::array<double, kClockEventReasons.size()> reason_s_{};
  SimRunInfo last_;
};

}  // namespace wattmoe
