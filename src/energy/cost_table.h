// ProfiledCostModel: expert costs measured by a profiler and stored as JSON:
//   {"format": "wattmoe.cost_table.v1", "device": "...", "num_layers": L, "num_experts": E,
//    "layers": [{"layer": 0, "experts": [{"a_j": .., "b_j": .., "a_s": .., "b_s": .., "spread": ..}, ...]}, ...]}
// "device", "num_layers", "num_experts" and "layer" are optional; when present they must agree with the arrays.
// The profiler's extension fields (energy/profiler.h) are accepted and ignored: top-level "blocks", "token_counts",
// "sensor", "simulated", "method", "idle_w", "command", "options", "hardware"; per expert "name", "measurements", "fit".
// Loading errors name the file and the field (layers[2].experts[5].b_j).
#pragma once
#include <string>
#include <vector>

#include "energy/cost_model.h"
#include "io/json.h"

namespace wattmoe {

class ProfiledCostModel : public CostModel {
 public:
  explicit ProfiledCostModel(std::vector<std::vector<ExpertCost>> layers, std::string device = "");
  static ProfiledCostModel load(const std::string& path);
  static ProfiledCostModel from_json(const Json& j, const std::string& where);

  std::string name() const override { return "profiled"; }
  int num_layers() const override { return int(layers_.size()); }
  int num_experts(int layer) const override;
  ExpertCost expert_cost(int layer, int expert, double tokens) const override;
  const std::string& device() const { return device_; }

 private:
  std::vector<std::vector<ExpertCost>> layers_;
  std::string device_;
};

// Writes any model's linear costs at `tokens` as a table (e.g. to seed a profile from the analytic model).
Json cost_table_to_json(const CostModel& m, double tokens, const std::string& device = "");
void save_cost_table(const std::string& path, const CostModel& m, double tokens, const std::string& device = "");

}  // namespace wattmoe
