// Profiler: prices blocks of work (an expert, attention, a router — whatever the caller wraps) on the device the
// sensor measures. energy/ knows no model: a block is a name, a function that runs one call at T tokens, and the
// FLOPs/bytes of that call.
//
// For each block and token count T:
//   warm-up calls; a timed pilot (device synchronised) that doubles its call count until it lasts pilot_s, giving
//   the time of one call; on real sensors settle_s more of the same; then `repeats` meter windows of ceil(min_window_s / call time) calls each, named
//   "<block>.T<T>.r<i>" inside an outer "<block>.T<T>" window. J and s per call of a window = its energy (the
//   sensor's counter when it has one, else integrated power) and duration / its calls; the point reports the
//   medians over the repeats and their relative spread (sample std / mean).
// Then per block J = a + b·T and s = a + b·T are fitted on relative residuals (energy/profile_fit.h).
//
// Virtual-time sensors (the simulated GPU): the block's Work is fed to the SimulatedGpu instead of running code,
// and the meter is polled every 1 ms of simulated time, so the whole profile is deterministic (bitwise the same
// twice) and runs on CI. Progress (block i/n, rate, ETA) goes to stderr.
//
// Launch records (optional, ProfileOptions::trace_launches): after every window is measured, one more run of each
// (block, T) is traced and its kernels summarised (energy/occupancy.h): kernels per call, their GPU time, occupancy,
// registers and shared memory. Tracing happens after the energy windows so it cannot disturb them.
//
// profile_to_json writes the result as a wattmoe.cost_table.v1 table (energy/cost_table.h) that ProfiledCostModel
// reads: expert blocks fill "layers"; the other blocks, the per-T measurements, the sensor, the method, the idle
// power and the command are extension fields the loader accepts and ignores.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "energy/meter.h"
#include "energy/occupancy.h"
#include "energy/profile_fit.h"
#include "energy/sensor.h"
#include "energy/sim_gpu.h"
#include "io/json.h"

namespace wattmoe {

struct ProfileBlock {
  std::string name;  // as telemetry and NVTX show it: "layer0.expert3", "layer0.attention", "layer0.router"
  std::string kind;  // "expert" (goes into the cost table's layers), or any other word: "attention", "router", ...
  int layer = -1;
  int expert = -1;                     // -1 for non-expert blocks
  std::function<void(int tokens)> run;  // calls_per_run calls on the real device (asynchronous is fine: syncs follow)
  std::function<Work(int tokens)> work; // FLOPs and bytes of ONE call: for the simulated GPU and the analytic model
  int calls_per_run = 1;                // e.g. a CUDA graph of several calls; results are per call
};

struct ProfileOptions {
  std::vector<int> token_counts{1, 8, 64, 512, 4096};
  double min_window_s = 0.5;  // each measured window lasts at least this (NVML's counter ticks every ~0.1 s)
  int repeats = 3;            // windows per (block, T)
  int warmup = 2;             // untimed calls before the pilot
  double pilot_s = 0.05;      // the pilot runs at least this long
  double settle_s = 0.25;     // real sensors: keep running this long after the pilot before the first window, so
                              // power readings (and the counter estimate built on them) have left the previous block
  int64_t max_calls = 10000000;  // per window
  std::function<void()> sync;    // device synchronise (also pass it to the meter: MeterOptions::sync)
  bool progress = true;          // one line per (block, T) on stderr
  // The kernels `run` launches (on the GPU: CUPTI's kernel activity records), `label` "<block>.T<T>"; it must call
  // `run` whether or not it can record (a profiler outside may be watching). Empty: nothing recorded. Null: no pass.
  std::function<std::vector<KernelLaunch>(const std::string& label, const std::function<void()>& run)> trace_launches;
  SmLimits sm;  // the device the launch records come from (validated when trace_launches is set)
};
// Error naming the option and what was expected.
void validate(const ProfileOptions& o);

struct ProfileWindow {
  int64_t calls = 0;  // block calls in the window (runs × calls_per_run)
  double seconds = 0, joules = 0;  // the whole window
  double joules_counter = kNaN, joules_integrated = kNaN;
  std::string method;  // "counter" or "integrated"
  bool warning = false;
};

struct ProfilePoint {
  int tokens = 0;
  double joules = 0, seconds = 0;     // per call: median over the repeats
  double spread_j = 0, spread_s = 0;  // relative spread over the repeats
  Work work;                          // of one call
  std::vector<ProfileWindow> windows;
  std::optional<LaunchSummary> launches;  // per call, when launch records were taken
};

struct BlockProfile {
  std::string name, kind;
  int layer = -1, expert = -1;
  std::vector<ProfilePoint> points;  // one per token count, in order
  LinearFit joules, seconds;         // per call against T
  double spread = 0;                 // the largest spread_j over the points
};

struct ProfileResult {
  std::vector<BlockProfile> blocks;
  std::vector<int> token_counts;
  std::string sensor;   // PowerSensor::name()
  bool simulated = false;
  std::string method;   // "counter", "integrated" or "mixed": how the windows' joules were measured
  double idle_w = kNaN; // measured before profiling (NaN if not measured)
  double min_window_s = 0;
  int repeats = 0, warmup = 0;
  std::optional<SmLimits> sm;  // set when launch records were taken
};

class Profiler {
 public:
  // A virtual-time sensor needs `sim` (the simulated GPU it reads) to feed work to; a real one must not have it.
  // sensor, meter and sim must outlive the profiler.
  Profiler(PowerSensor& sensor, EnergyMeter& meter, ProfileOptions opt, SimulatedGpu* sim = nullptr);

  // Mean power over `seconds` with nothing running (W).
  double measure_idle(double seconds);
  // Every token count of one block (fits included).
  BlockProfile profile_block(const ProfileBlock& b);
  // Idle power for idle_s seconds (skipped when 0), then every block. Errors name the bad block.
  ProfileResult run(const std::vector<ProfileBlock>& blocks, double idle_s = 0);

  const ProfileOptions& options() const { return opt_; }
  bool simulated() const { return sim_ != nullptr; }

 private:
  void check_block(const ProfileBlock& b) const;
  BlockProfile profile_one(const ProfileBlock& b);
  void call(const ProfileBlock& b, int tokens, const Work& w);
  double now();
  ProfilePoint measure(const ProfileBlock& b, int tokens);
  void trace_launches(const ProfileBlock& b, ProfilePoint& p);

  PowerSensor& sensor_;
  EnergyMeter& meter_;
  ProfileOptions opt_;
  SimulatedGpu* sim_;
  double last_poll_ = 0;
  size_t done_ = 0, total_ = 0;  // (block, T) pairs, for progress
  double t_start_ = 0;           // wall clock of the first pair
  int counter_windows_ = 0, integrated_windows_ = 0;
};

// The cost table (wattmoe.cost_table.v1 plus extension fields). Expert blocks must cover experts 0..E_l-1 of
// layers 0..L-1 (Error otherwise). `device` and `command` are written as given.
Json profile_to_json(const ProfileResult& r, const std::string& device, const std::string& command);

}  // namespace wattmoe
