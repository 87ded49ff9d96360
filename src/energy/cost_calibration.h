// CalibratedCostModel: another cost model corrected online by measured energy (EnergyMeter windows).
// For each (layer, expert) and each layer it keeps a bias-corrected exponential moving average of
// measured / predicted, where predicted comes from the base model (never from the corrected one, so the
// correction cannot feed on itself). expert_cost() = base × factor, for a and b alike. An expert with no
// observation of its own uses its layer's factor (per_expert = false: always the layer's). Not thread-safe:
// observe and read from the same (control) thread.
#pragma once
#include <memory>
#include <vector>

#include "energy/cost_model.h"
#include "energy/sensor.h"

namespace wattmoe {

struct CalibrationOptions {
  double alpha = 0.1;     // weight of a new observation in the moving average
  bool per_expert = true;
};

class CalibratedCostModel : public CostModel {
 public:
  CalibratedCostModel(std::shared_ptr<const CostModel> base, CalibrationOptions opt = {});

  std::string name() const override { return "calibrated(" + base_->name() + ")"; }
  int num_layers() const override { return base_->num_layers(); }
  int num_experts(int layer) const override { return base_->num_experts(layer); }
  ExpertCost expert_cost(int layer, int expert, double tokens) const override;

  // One window that ran only this expert for `tokens` tokens. seconds may be NaN (energy only).
  void observe_expert(int layer, int expert, double tokens, double joules, double seconds = kNaN);
  // One window over a whole layer step, counts[e] tokens on expert e. Updates the layer's factor.
  void observe_layer(int layer, const std::vector<int>& counts, double joules, double seconds = kNaN);

  double joules_factor(int layer, int expert) const;
  double seconds_factor(int layer, int expert) const;
  const CostModel& base() const { return *base_; }

 private:
  struct Ema {
    double m = 0, w = 0;  // bias-corrected: value = m / w (the first observation is taken as is)
    void add(double x, double alpha) {
      m = (1 - alpha) * m + alpha * x;
      w = (1 - alpha) * w + alpha;
    }
    double value() const { return w > 0 ? m / w : 1.0; }
  };
  struct Factors {
    Ema joules, seconds;
  };
  const Factors& pick(int layer, int expert) const;
  static void add_ratio(Ema& ema, double measured, double predicted, double alpha);

  std::shared_ptr<const CostModel> base_;
  CalibrationOptions opt_;
  std::vector<Factors> layer_;
  std::vector<std::vector<Factors>> expert_;
};

}  // namespace wattmoe
