// Plant: what `wattmoe run` feeds each window's routed work to, and reads power from for the controller — the one
// place that knows what a GPU draws. Two plants implement it:
//   sim   SimulatedPlant (plant/sim_plant.h): the simulated GPU in virtual time, every value labelled "simulated";
//         in every build.
//   cuda  RealGpuPlant (plant/real_plant.h; CUDA builds only): each window's work run as real Mixtral-shaped expert
//         blocks, paced to the step period, its energy read from NVML — every value labelled "measured".
//   model RealGpuPlant running the caller's own work (PlantOptions::work: the run's model on the GPU), paced and
//         measured the same way — "measured", the model itself.
// Callers see only this interface (make_plant), so they are the same in both builds. The per-window JSONL keys are
// prefixed with prefix(): "sim" (sim_power_w, sim_step_j, ...) or "measured" (measured_power_w, ...); the run's
// summary has the same keys for both ("plant", with describe() and the totals, and "measured": true|false).
// plant/ uses core, io (JSON), energy (sensors, meter, simulated GPU, expert work) and, for the real plant, the CUDA
// blocks of ops/cuda; it knows no model (the work arrives as per-layer expert counts).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "energy/expert_work.h"
#include "energy/sensor.h"
#include "energy/sim_params.h"
#include "io/json.h"

namespace wattmoe {

// One plant step: the work of one window, as the plant ran it.
struct PlantStep {
  double seconds = 0;       // step duration (≥ the period; longer when the work overran it)
  double busy_seconds = 0;  // time the GPU ran the step's work
  double joules = 0;        // the step's energy (simulated exactly, or measured: NVML energy counter)
  double tokens = 0;        // tokens the step processed (window tokens × streams × batch_scale)
  bool overrun = false;     // the work did not fit in the period
  Sample sample;            // the sensor at the step's end: temperature, clocks, clock-event reasons
  // Where the plant prices test-time adaptation (prices_adaptation()): what it added to the step — its busy time,
  // and its joules above the idle power the step would otherwise have drawn over that time (so joules − adapt_joules
  // is the step without it, unless it overran the period). 0 on a measured plant, whose steps hold the adaptation's
  // real work without telling it apart.
  double adapt_joules = 0, adapt_seconds = 0;
  double power_w() const { return seconds > 0 ? joules / seconds : 0; }
  double joules_per_token() const { return tokens > 0 ? joules / tokens : 0; }
};

class Plant {
 public:
  virtual ~Plant() = default;
  virtual const char* prefix() const = 0;  // "sim" or "measured"
  // counts: [layer][expert] (token, expert) pairs of the window (empty rows for dense layers); window_tokens: the
  // window's tokens; batch_scale in (0, 1]: the share of the batch the controller lets through.
  virtual PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens,
                         double batch_scale) = 0;
  // What the summary says about the plant (label, GPU, shape, idle power, ...); the caller adds the totals.
  virtual Json describe() const = 0;
  // Test-time adaptation on the window just scored, charged inside the next step(): `forwards` forward and
  // `backwards` backward passes over the window's own routed work (counts, `tokens` tokens, once: the adapter trains
  // on the window itself, not on each stream it stands for; WindowOutcome's extra_forwards and backwards). Only a
  // plant that prices adaptation does anything (the simulated GPU); a measured plant measures the adaptation's real
  // work when it runs on the measured GPU, so the default ignores it.
  virtual bool prices_adaptation() const { return false; }
  virtual void charge_adaptation(const std::vector<std::vector<int64_t>>& /*counts*/, double /*tokens*/,
                                 int /*forwards*/, int /*backwards*/) {}
  // The routed experts' tier changed at run time (the degradation ladder's tier level): a plant that prices the work
  // prices their weights at `bytes` each from the next step (ops::expert_precision_bytes); a measured plant measures
  // whatever the model runs, so the default does nothing.
  virtual void set_expert_weight_bytes(double /*bytes*/) {}
  // Per-window JSONL fields beyond the common ones (empty object for none).
  virtual Json step_extras(const PlantStep&) const { return Json::object(); }
};

// The work one window stands for, on either plant. The shipped model is tiny, so by default every expert is priced
// (sim) or run (cuda) as a Mixtral-shaped expert (H = 4096, I = 14336, bf16), and each window stands for `streams`
// concurrent streams routed like it: the step's (token, expert) pairs are the window's counts × streams ×
// batch_scale. Per layer the dense part (attention projections and router, `dense_params` weights of
// dense_weight_bytes bytes) adds flops = 2·P·T and bytes = P·dense_weight_bytes (attention scores are left out).
// expert.weight_bytes is the routed experts' tier (bf16 2, fp8 and int8 1: --expert-precision); the dense part stays
// bf16 whatever the experts' tier.
struct PlantShape {
  ExpertShape expert{4096, 14336, 2, 2, 3};
  double dense_params = 4096.0 * (4096 + 1024 + 1024 + 4096) + 8.0 * 4096;  // per layer: q, k, v, o, router
  double dense_weight_bytes = 2;
  double streams = 16;     // concurrent streams each window stands for
  double period_s = 0.02;  // one step per period (arrival cadence)
};

// --expert-shape HxI (empty: keep the Mixtral default): every expert priced or run as H x I, and the dense part of a
// layer as q, k, v, o and a router of that hidden size (2.5·H² + E·H weights); expert_weight_bytes: the experts' tier
// (ops::expert_precision_bytes). Error unless HxI with positive sizes.
void set_plant_expert_shape(PlantShape& s, const std::string& hxi, int num_experts, double expert_weight_bytes);

struct PlantOptions {
  std::string name = "sim";  // "sim", "cuda" or "model"
  PlantShape shape;          // expert shape, streams, period (both plants)
  SimGpuParams sim;          // sim only
  // cuda only:
  int num_layers = 0, num_experts = 0, window_tokens = 0;  // the model's layers/experts; max tokens of a window
  double idle_s = 2;                                       // idle power measured for this long before any work
  uint64_t seed = 1;
  // model only: the step's work (streams × batch_scale windows of the model on the GPU); returns tokens processed.
  std::function<double(double batch_scale)> work;
};

// "sim", "cuda" or "model"; Error for another name, and for cuda/model when this wattmoe was built without CUDA or
// no CUDA device is visible — cheap, so a caller checks before any work.
void check_plant(const std::string& name);

// Step period when none is given: 0.02 s simulated; 1 s on a real GPU (cuda, model) (on an H200 the NVML energy counter read
// identical 0.25 s steps ±12% apart and 1 s steps ±0.6%: the controller needs the latter).
double default_step_period(const std::string& name);

// The plant o.name names (check_plant's errors first).
std::unique_ptr<Plant> make_plant(const PlantOptions& o);

}  // namespace wattmoe
