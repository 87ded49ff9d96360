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
