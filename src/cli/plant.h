// The plant `wattmoe run` feeds each window's routed work to, and reads power from for the controller:
//   sim   the simulated GPU (cli/sim_step.h; virtual time, every value labelled "simulated"), in every build;
//   cuda  a real GPU (gpu/real_plant.h; CUDA builds only): each window's work is run with real Mixtral-shaped expert
//         blocks, paced to the step period, and its energy read from NVML — every value labelled "measured".
// The CLI sees only this interface, so cmd_run.cpp is the same in both builds. JSONL/summary keys are prefixed with
// prefix(): "sim" (sim_power_w, sim_step_j, ...) or "measured" (measured_power_w, measured_step_j, ...).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/sim_step.h"
#include "energy/sensor.h"
#include "energy/sim_params.h"
#include "io/json.h"

namespace wattmoe::cli {

struct PlantStep {
  double seconds = 0;       // step duration (≥ the period; longer when the work overran it)
  double busy_seconds = 0;  // time the GPU ran the step's work
  double joules = 0;        // the step's energy (simulated exactly, or measured: NVML energy counter)
  double tokens = 0;        // tokens the step processed (window tokens × streams × batch_scale)
  bool overrun = false;     // the work did not fit in the period
  Sample sample;            // the sensor at the step's end: temperature, clocks, clock-event reasons
  double power_w() const { return seconds > 0 ? joules / seconds : 0; }
  double joules_per_token() const { return tokens > 0 ? joules / tokens : 0; }
};

class Plant {
 public:
  virtual ~Plant() = default;
  virtual const char* prefix() const = 0;  // "sim" or "measured"
  // counts: [layer][expert] (token, expert) pairs of the window (empty rows for dense layers).
  virtual PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens,
                         double batch_scale) = 0;
  // What the summary says about the plant (label, GPU, shape, idle power, ...); the CLI adds the totals.
  virtual Json describe() const = 0;
  // Per-window JSONL fields beyond the common ones (empty object for none).
  virtual Json step_extras(const PlantStep&) const { return Json::object(); }
};

// "sim" or "cuda"; Error for another name, and for cuda when this wattmoe was built without CUDA or no CUDA device
// is visible — cheap, so the CLI calls it before any work.
void check_plant(const std::string& name);

// Step period when --step-period-s is not given: 0.02 s simulated; 1 s on a real GPU (on an H200 the NVML energy
// counter read identical 0.25 s steps ±12% apart and 1 s steps ±0.6%: the controller needs the latter).
double default_step_period(const std::string& name);

struct PlantOptions {
  std::string name = "sim";
  SimStepShape shape;  // expert shape, streams, period (both plants)
  SimGpuParams sim;    // sim only
  // cuda only:
  int num_layers = 0, num_experts = 0, window_tokens = 0;  // the model's layers/experts; max tokens of a window
  double idle_s = 2;                                       // idle power measured for this long before any work
  uint64_t seed = 1;
};

std::unique_ptr<Plant> make_plant(const PlantOptions& o);

}  // namespace wattmoe::cli
