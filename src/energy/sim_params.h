// Parameters of the simulated GPU. Defaults resemble an H100 SXM (board limit 700 W, idle ~80 W, 989 TFLOP/s
// dense bf16, 3.35 TB/s HBM3, 1980 MHz max SM clock); the energy-per-operation constants are chosen so that a
// large GEMM is power-capped at about 1400 MHz, as measured (docs/ARCHITECTURE.md), not measured themselves.
#pragma once
#include <cstdint>
#include <string>

#include "io/json.h"

namespace wattmoe {

struct SimGpuParams {
  std::string name = "sim-h100";
  // Power.
  double idle_w = 80;             // board power with nothing running
  double active_w = 0;            // extra power whenever work runs, whatever it does (raised clocks, the chip awake)
  double power_limit_w = 700;     // the enforced cap; above it the clock is lowered (reason sw_power_cap)
  double pj_per_flop = 1.75;      // dynamic energy per FLOP at the max SM clock
  double pj_per_byte = 60;        // dynamic energy per byte moved to/from HBM (HBM has its own clock: not scaled)
  double clock_power_exponent = 3;  // energy per FLOP ∝ V² ∝ f^(k-1), so compute-bound power ∝ f^k
  // Speed.
  double peak_flops = 989e12;            // at the max SM clock
  double bandwidth_bytes_per_s = 3.35e12;
  double launch_overhead_s = 4e-6;       // added to every run()
  double max_sm_clock_mhz = 1980;
  double min_sm_clock_mhz = 345;         // the floor throttling cannot go below; also the idle clock
  double mem_clock_mhz = 2619;
  // Thermal: first-order model dT/dt = (P·R_th − (T − T_ambient)) / tau.
  double ambient_c = 25;
  double thermal_resistance_c_per_w = 0.07;  // steady-state rise per watt (700 W → +49 C)
  double thermal_tau_s = 20;
  double initial_temp_c = -1;                // < 0: start at the idle steady state
  double slowdown_temp_c = 85;               // above: clock lowered (reason sw_thermal_slowdown)
  double slowdown_clock_per_c = 0.05;        // fraction of the max clock removed per degree above slowdown
  double hw_slowdown_temp_c = 92;            // at or above: clock at most hw_slowdown_clock_fraction (hw_thermal)
  double hw_slowdown_clock_fraction = 0.5;
  double thermal_step_s = 0.01;              // sub-step while the temperature can move the clock
  // Telemetry, as NVML shows it.
  double counter_tick_s = 0.1;       // the mJ energy counter only updates this often
  double power_avg_window_s = 1.0;   // power_avg_w is the mean over this window
  // Fault injection: every reading after this simulated time fails (an Error, as NVML failing mid-run); < 0: never.
  double sensor_fails_after_s = -1;
  uint64_t mem_total_bytes = uint64_t(80) << 30;
};

// Error naming `where` and the field when a value is out of range or inconsistent.
void validate(const SimGpuParams& p, const std::string& where = "sim params");
Json sim_params_to_json(const SimGpuParams& p);
// Missing fields keep their defaults; unknown fields are an Error (a typo would otherwise be ignored).
SimGpuParams sim_params_from_json(const Json& j, const std::string& where);
SimGpuParams load_sim_params(const std::string& path);
void save_sim_params(const std::string& path, const SimGpuParams& p);

}  // namespace wattmoe
