// ClosedLoopPlant: a closed-loop stand-in for a serving MoE model on the simulated GPU, so the Controller can be
// evaluated (overshoot, settling, thermal, ladder) without a model. A test harness for control/ (compiled into the
// test binary, not the library): it knows ControlDecision; the Controller does not know it. The library's plant
// (plant/plant.h) runs a window's real expert counts; this one turns a decision into expected work, and its step
// (ClosedLoopStep, not the library's PlantStep) carries what a controller test needs beside the measurement: the
// noisy measured power the controller sees, the meter's reading and the simulator's truth.
//
// One plant step = one control interval: `batches_per_step` forward passes of `tokens_per_batch ×
// batch_scale` tokens, issued at a fixed cadence — the step starts every step_period_s and the GPU idles for
// what is left (a step whose work takes longer simply runs late). Power is therefore the step's energy over
// its duration; holding a power budget means doing less work per step, which is how a real server at a given
// request rate sees it.
//
// Work of one forward pass (a Mixtral-shaped model by default: L = 32 layers, E = 8 experts of H = 4096,
// I = 14336, model top-k = 2, bf16), with k_eff experts per token and E' = E − masked experts available (the
// expert terms are energy/expert_work.h's, with the weights read once per distinct expert):
//   expert FFNs (all layers)  flops = 2·3·H·I·T·k_eff·L
//                             bytes = (3·H·I·wbytes · D + (2H + 2I)·abytes · T·k_eff)·L,
//                             D = E'·(1 − (1 − k_eff/E')^T) distinct experts touched (uniform routing,
//                             expected value)
//   dense part                flops = 2·dense_params·T, bytes = dense_params·wbytes (attention, router,
//   norms, head;
//                             attention's T² terms ignored)
// k_eff at rung 0 follows the decision: topk uses knobs.k_max; the continuous families use
//   k_eff = model_k − c(u)·(model_k − 1), c = effort_curve (piecewise linear points (u, c) from (0, 0) to (1,
//   c1),
// c non-decreasing in [0, 1]: an assumed or measured curve of how much of the way to one expert per token the
// policy goes at effort u);
// rungs ≥ 1 route top-1 (k_eff = 1) over the unmasked experts.
//
// Measurement: the simulator's sensor is read after every run and idle segment, and its power (the power of
// the segment that just ended) is integrated over the step. An EnergyMeter window per step (counter method,
// as with NVML) is reported beside it (meter_power_w) and feeds the controller instead with use_meter = true;
// with samples only at segment ends its tail correction interpolates linearly across the 700 W → idle edges,
// which biases it
// (+16 W, 3–5 %, at the defaults). Optional deterministic relative Gaussian noise is applied to what is
// reported. The true energy integral is reported for evaluation.
#pragma once
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "control/controller.h"
#include "core/rng.h"
#include "energy/expert_work.h"
#include "energy/meter.h"
#include "energy/sim_gpu.h"
#include "energy/sim_sensor.h"

namespace wattmoe {

struct ClosedLoopPlantConfig {
  SimGpuParams gpu;
  int layers = 32;
  int num_experts = 8;
  int model_k = 2;
  ExpertShape expert{4096, 14336, 2, 2, 3};  // bf16; its weight_bytes prices the dense part's weights too
  // Non-expert parameters read per forward pass: 32 × (q, k, v, o = 4096·(4096 + 1024 + 1024 + 4096), router
  // 8·4096) + lm_head 32000·4096.
  double dense_params = 32.0 * (4096.0 * 10240.0 + 8.0 * 4096.0) + 32000.0 * 4096.0;
  int tokens_per_batch = 2048;
  int batches_per_step = 2;
  double step_period_s = 0.25;
  std::vector<std::pair<double, double>> effort_curve = {{0.0, 0.0}, {1.0, 1.0}};
  double noise = 0;  // relative standard deviation of the reported measurements, in [0, 0.5)
  bool use_meter =
      false;  // report the EnergyMeter's counter-method energy instead of the sensor-power integral
  uint64_t seed = 1;
};

void validate(const ClosedLoopPlantConfig& c, const std::string& where = "closed-loop plant");

// One step of the closed loop (one control interval).
struct ClosedLoopStep {
  double seconds = 0;           // duration of the step (≥ step_period_s)
  double tokens = 0;            // tokens processed
  double k_eff = 0;             // experts per token used
  double power_w = 0;           // measured (meter + noise)
  double joules_per_token = 0;  // measured (meter + noise)
  double meter_power_w = 0;     // EnergyMeter window (counter method), no noise
  double true_power_w = 0;      // exact simulator energy / seconds
  double true_joules = 0;
  Sample sample;              // the sensor's reading at the step's end
  uint64_t thermal_bits = 0;  // thermal clock-event bits the simulator set at any time during the step
  bool overrun = false;       // the work took longer than step_period_s
};

class ClosedLoopPlant {
 public:
  explicit ClosedLoopPlant(ClosedLoopPlantConfig c);
  ClosedLoopPlant(const ClosedLoopPlant&) = delete;
  ClosedLoopPlant& operator=(const ClosedLoopPlant&) = delete;

  ClosedLoopStep step(const ControlDecision& d);
  // k_eff the plant uses for a decision (exposed for tests).
  double experts_per_token(const ControlDecision& d) const;
  ControlInput input_for(int64_t step, const ClosedLoopStep& s) const;  // what a caller feeds the Controller

  const SimulatedGpu& gpu() const { return *gpu_; }
  const ClosedLoopPlantConfig& config() const { return c_; }

 private:
  double effort_fraction(double u) const;
  void sense();  // reads the sensor and integrates the segment that just ended

  ClosedLoopPlantConfig c_;
  std::unique_ptr<SimulatedGpu> gpu_;
  std::unique_ptr<SimSensor> sensor_;
  std::unique_ptr<EnergyMeter> meter_;
  Rng rng_;
  double sensed_j_ = 0, sensed_t_ = 0;
};

// Runs the loop for `steps` steps from the controller's initial decision; `on_step(i, plant step, decision)`
// may change the target or inspect the state. Returns the decisions (the one applied in step i is
// decisions[i]).
template <class F>
std::vector<ControlDecision> run_closed_loop(Controller& ctl, ClosedLoopPlant& plant, int steps, F&& on_step) {
  std::vector<ControlDecision> applied;
  ControlDecision d = ctl.initial();
  for (int i = 0; i < steps; ++i) {
    applied.push_back(d);
    const ClosedLoopStep s = plant.step(d);
    on_step(i, s, d);
    d = ctl.update(plant.input_for(i + 1, s));
  }
  return applied;
}

}  // namespace wattmoe
