// SyntheticLoad: a repeating work pattern for the simulated GPU, so telemetry from the simulator moves like a
// real serving GPU: idle, decode-like steps (memory-bound: weights streamed once per token), prefill-like GEMMs
// (compute-bound: power-capped on the default H100-like parameters), idle again.
#pragma once
#include <string_view>

#include "energy/sim_gpu.h"

namespace wattmoe {

class SyntheticLoad {
 public:
  explicit SyntheticLoad(SimulatedGpu& gpu, double period_s = 12.0);
  // Runs work or idles until the simulator's clock reaches t (the last run may end a little after t).
  void advance_to(double t);
  std::string_view phase_at(double t) const;  // "idle", "decode" or "prefill"

 private:
  SimulatedGpu& gpu_;
  double period_;
};

}  // namespace wattmoe
