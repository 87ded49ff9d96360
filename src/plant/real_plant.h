// RealGpuPlant: the plant (plant/plant.h) on a real GPU — the work of one window of `wattmoe run` run there, paced to
// a step period, with its energy read from NVML: the plant the power-budget controller closes its loop around on the
// device (`--plant cuda`). CUDA builds only (CMakeLists.txt leaves this file's .cpp out otherwise); make_plant
// builds it from PlantOptions. Every value it reports is labelled "measured".
//
// Per step, for each MoE layer l (layers × experts weight sets of Mixtral shape, bf16, random, allocated once):
//   dense   one GEMM [T, H] · [D, H]ᵀ with T = window tokens × streams × batch_scale and D = q+k+v+o outputs +
//           router (4096+1024+1024+4096+E by default): the FLOPs and weight bytes of the attention projections and
//           router that the simulated plant (plant/sim_plant.h) prices (attention scores are left out there too);
//   experts for each expert e with n_e = round(counts[l][e] × streams × batch_scale) > 0, the real SwiGLU expert
//           block (ops/cuda ExpertBlockCuda: gate, up [I,H], down [H,I]) over n_e tokens, reading that (l, e)'s own
//           weights, so weight traffic is what serving those experts would read.
// Then cudaDeviceSynchronize and sleep until the period is over (a step whose work takes longer overruns: it lasts
// as long as its work and says so). The step's energy is the NVML total-energy counter's (mJ) difference between
// two of its updates (it ticks every ~0.1 s): each step starts at the update that closed the one before (the
// host's work between windows, running the model on the CPU, is inside the next window) and closes at the first
// update after its period, so the windows tile the run (~0.25–0.27 s for a 0.25 s period), and the counter's lag
// cancels as long as it is shorter than the window's idle end. power = energy / duration. Without a counter: the
// meter's integrated instant power over the step.
// Resolution (H200, 2026-11-26, identical unconstrained steps whose GPU time varied ±1.6 ms of 148 ms): per 0.25 s
// window the measured power scatters ±62 W (1 sd, 12%) — both this way and with the EnergyMeter's estimate at
// arbitrary times (±56 W) — and ±16 W (3%) over 1 s (4 windows). The counter there changed every few ms (windows
// closed 1–19 ms after the period), not every 0.1 s, but its value is lumpy on that scale: read power over ≥ 1 s
// when judging a single reading.
//
// The model itself as the work (`--plant model`): with RealPlantConfig::work set, each step runs that callback (the
// run's model on the window, for the step's streams; it returns the tokens it processed) instead of the synthetic
// blocks, and nothing synthetic is allocated: the same pacing and measurement, of the model's own kernels.
//
// Construction: CUDA device 0 and NVML device 0 (the same card unless CUDA_VISIBLE_DEVICES reorders them: the name
// of each is reported), the meter's sampler thread at 50 Hz, the buffers allocated, then idle power measured for
// idle_s seconds before any kernel runs, then the weights filled and one unmeasured warm-up step.
// When the card cannot hold layers × experts weight sets, fewer are allocated and (l, e) reuses set (l·E + e) mod
// sets (weight_sets() says how many): reads then partly hit L2 only if a set is smaller than L2, which it is not.
// Read only: no clock or power limit is ever set.
// Per step, step_extras() adds the measurement's details: measured_busy_s, measured_overrun, measured_method,
// measured_peak_w, measured_max_temp_c, measured_integrated_j/_s (instant power integrated over the step, a
// cross-check) and measured_reasons_seen (clock-event reasons active at any time during the step).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "energy/sensor.h"
#include "plant/plant.h"

namespace wattmoe {

struct RealPlantConfig {
  int hidden = 4096, ffn = 14336;
  int num_layers = 0, num_experts = 0;
  int dense_out = 0;         // rows of the dense GEMM's weight; 0 = 4096+1024+1024+4096 + num_experts
  int window_tokens = 0;     // the most tokens a window holds (max n_e = window_tokens × streams)
  double streams = 16;       // concurrent streams each window stands for
  double period_s = 0.25;    // one step per period
  double idle_s = 2;         // idle power measurement before any work (0 = skip)
  double sample_hz = 50;     // NVML sampling rate of the meter's thread
  uint64_t seed = 1;
  // The model's own work for a step (streams × batch_scale windows); returns the tokens processed. Empty: the
  // synthetic Mixtral-shaped blocks above.
  std::function<double(double scale)> work;
};

class RealGpuPlant : public Plant {
 public:
  // Error when there is no CUDA device or no NVML, naming which. Logs the device, sensor, weight sets and idle power.
  explicit RealGpuPlant(const RealPlantConfig& c);
  ~RealGpuPlant() override;
  RealGpuPlant(const RealGpuPlant&) = delete;
  RealGpuPlant& operator=(const RealGpuPlant&) = delete;

  const char* prefix() const override { return "measured"; }
  // counts: [layer][expert] (token, expert) pairs of the window; rows may be empty (dense layers). The first step
  // whose work overruns the period logs a warning.
  PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale) override;
  Json describe() const override;
  Json step_extras(const PlantStep&) const override;  // the last step's measurement details (above)

  double idle_w() const;             // NaN when not measured
  double idle_seconds() const;
  std::string cuda_device() const;   // "NVIDIA H100 80GB HBM3 (sm_90, 79.2 GiB)"
  std::string sensor_name() const;   // "nvml:0 (NVIDIA H100 80GB HBM3)"
  int weight_sets() const;
  double weight_gib() const;
  const RealPlantConfig& config() const;

  struct Impl;
  static void measure_idle(Impl& m);  // idle_s seconds of idle power, before any kernel

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wattmoe
