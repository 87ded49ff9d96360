// AnalyticCostModel: expert costs from FLOPs and bytes on a roofline, with no measurement.
//   t(T) = max(flops(T) / peak_flops, bytes(T) / bandwidth) + launch_s
//   J(T) = static_w·t(T) + pJ/FLOP·flops(T) + pJ/byte·bytes(T)
// with flops(T) and bytes(T) of one expert over T tokens from energy/expert_work.h (the one home of that formula:
// weights read once per step, activations per token). energy/ knows no model: shapes arrive as plain numbers.
#pragma once
#include <cstdint>
#include <vector>

#include "energy/cost_model.h"
#include "energy/expert_work.h"
#include "energy/sim_params.h"

namespace wattmoe {

struct HardwareCoeffs {
  double static_w = 80;      // power that runs whatever the block does, charged for its time
  double pj_per_flop = 1.75;
  double pj_per_byte = 60;
  double peak_flops = 989e12;
  double bandwidth_bytes_per_s = 3.35e12;
  double launch_s = 4e-6;
  static HardwareCoeffs from_sim(const SimGpuParams& p);  // the same numbers the simulator runs on
};

class AnalyticCostModel : public CostModel {
 public:
  // layers[l][e]: the shape of expert e in layer l. Errors name the bad layer/expert/field.
  AnalyticCostModel(std::vector<std::vector<ExpertShape>> layers, HardwareCoeffs hw);
  static AnalyticCostModel uniform(int num_layers, int num_experts, ExpertShape shape, HardwareCoeffs hw);

  std::string name() const override { return "analytic"; }
  int num_layers() const override { return int(layers_.size()); }
  int num_experts(int layer) const override;
  ExpertCost expert_cost(int layer, int expert, double tokens) const override;  // tangent at `tokens`

  // The exact (non-linear) roofline values.
  double exact_seconds(int layer, int expert, double tokens) const;
  double exact_joules(int layer, int expert, double tokens) const;
  double flops(int layer, int expert, double tokens) const;
  double bytes(int layer, int expert, double tokens) const;

 private:
  std::vector<std::vector<ExpertShape>> layers_;
  HardwareCoeffs hw_;
};

}  // namespace wattmoe
