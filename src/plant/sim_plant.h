// SimulatedPlant: the plant on the simulated GPU (energy/sim_gpu.h; virtual time, labelled simulated everywhere it
// is reported). Per step, for each layer: the dense part (plant/plant.h PlantShape), then every expert e with
// c_e > 0 pairs in the window runs once over n_e = c_e × streams × batch_scale tokens, priced by
// energy/expert_work.h:  flops = 2·3·H·I·n_e,  bytes = 3·H·I·wbytes + (2H + 2I)·abytes·n_e  (weights read once per
// step). Steps start every period_s; the GPU idles for what is left, so power = step energy / duration, and a step
// whose work takes longer lasts as long as its work (overrun). Test-time adaptation charged for the window
// (charge_adaptation) runs after the window's work in the same step, priced the same way over the window's own work
// (its counts and tokens at scale 1: the adapter trains on the window, not on every stream): a forward as that work,
// a backward as that work over twice the tokens — twice the FLOPs (input gradients, and weight gradients where
// wanted), the weights read once (the usual 2x estimate; on the high side for router/norm/LoRA training, whose frozen
// expert weights need no gradient). So its joules are in the step the controller sees (PlantStep::adapt_joules
// tells them apart; JSONL sim_adapt_j).
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

// Test-time adaptation's work priced as above: `forwards` passes over the window's own work (counts, tokens, scale
// 1) and `backwards` passes as that work over twice the tokens. Returns the busy seconds. SimulatedPlant::step and the
// server's simulated energy call it.
double run_adaptation_work(SimulatedGpu& gpu, const PlantShape& s, const std::vector<std::vector<int64_t>>& counts,
                           double tokens, int forwards, int backwards);

class SimulatedPlant : public Plant {
 public:
  SimulatedPlant(const SimGpuParams& p, const PlantShape& s);
  const char* prefix() const override { return "sim"; }
  PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale) override;
  Json describe() const override;
  bool prices_adaptation() const override { return true; }
  void charge_adaptation(const std::vector<std::vector<int64_t>>& counts, double tokens, int forwards,
                         int backwards) override;
  Json step_extras(const PlantStep& st) const override;  // sim_adapt_j, sim_adapt_s
  void set_expert_weight_bytes(double bytes) override { shape_.expert.weight_bytes = bytes; }

  const SimulatedGpu& gpu() const { return gpu_; }

 private:
  SimulatedGpu gpu_;
  SimGpuParams params_;
  PlantShape shape_;
  // The adaptation charged for the next step (no passes: none).
  std::vector<std::vector<int64_t>> adapt_counts_;
  double adapt_tokens_ = 0;
  int adapt_forwards_ = 0, adapt_backwards_ = 0;
};

}  // namespace wattmoe
