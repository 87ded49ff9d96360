// SimulatedPlant: the plant on the simulated GPU (energy/sim_gpu.h; virtual time, labelled simulated everywhere it
// is reported). Per step, for each layer: the dense part (plant/plant.h PlantShape), then every expert e with
// c_e > 0 pairs in the window runs once over n_e = c_e × streams × batch_scale tokens, priced by
// energy/expert_work.h:  flops = 2·3·H·I·n_e,  bytes = 3·H·I·wbytes + (2H + 2I)·abytes·n_e  (weights read once per
// step). Steps start every period_s; the GPU idles for what is left, so power = step energy / duration, and a step
// whose work takes longer lasts as long as its work (overrun).
#pragma once
#include <cstdint>
#include <vector>

#include "energy/sim_gpu.h"
#include "plant/plant.h"

namespace wattmoe {

// One step's routed work on `gpu`, priced as above: per layer the dense part for `tokens` tokens, then every expert e
// with counts[l][e] > 0 once over counts[l][e] × scale tokens. Returns the busy seconds (no idling). The one place
// this pricing is written: SimulatedPlant::step and the server's simulated energy (serve/step_energy.h) call it.
double run_step_work(SimulatedGpu& gpu, const PlantShape& s, const std::vector<std::vector<int64_t>>& counts,
                     double tokens, double scale);

class SimulatedPlant : public Plant {
 public:
  SimulatedPlant(const SimGpuParams& p, const PlantShape& s);
  const char* prefix() const override { return "sim"; }
  PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale) override;
  Json describe() const override;

  const SimulatedGpu& gpu() const { return gpu_; }

 private:
  SimulatedGpu gpu_;
  SimGpuParams params_;
  PlantShape shape_;
};

}  // namespace wattmoe
