#include "energy/cost_calibration.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe {

CalibratedCostModel::CalibratedCostModel(std::shared_ptr<const CostModel> base, CalibrationOptions opt)
    : base_(std::move(base)), opt_(opt) {
  WATTMOE_REQUIRE(base_ != nullptr, "calibrated cost model: needs a base model");
  WATTMOE_REQUIRE(opt_.alpha > 0 && opt_.alpha <= 1, "calibrated cost model: alpha: expected (0, 1], got {}",
                  opt_.alpha);
  layer_.resize(size_t(base_->num_layers()));
  expert_.resize(size_t(base_->num_layers()));
  for (int l = 0; l < base_->num_layers(); ++l) expert_[size_t(l)].resize(size_t(base_->num_experts(l)));
}

const CalibratedCostModel::Factors& CalibratedCostModel::pick(int layer, int expert) const {
  check_index(layer, expert);
  const Factors& f = expert_[size_t(layer)][size_t(expert)];
  return opt_.per_expert && f.joules.w > 0 ? f : layer_[size_t(layer)];
}

double CalibratedCostModel::joules_factor(int layer, int expert) const { return pick(layer, expert).joules.value(); }

double CalibratedCostModel::seconds_factor(int layer, int expert) const {
  check_index(layer, expert);
  const Factors& f = expert_[size_t(layer)][size_t(expert)];
  return (opt_.per_expert && f.seconds.w > 0 ? f : layer_[size_t(layer)]).seconds.value();
}

ExpertCost CalibratedCostModel::expert_cost(int layer, int expert, double tokens) const {
  ExpertCost c = base_->expert_cost(layer, expert, tokens);
  const double fj = joules_factor(layer, expert), fs = seconds_factor(layer, expert);
  c.joules.a *= fj;
  c.joules.b *= fj;
  c.seconds.a *= fs;
  c.seconds.b *= fs;
  return c;
}

void CalibratedCostModel::add_ratio(Ema& ema, double measured, double predicted, double alpha) {
  if (std::isnan(measured)) return;
  ema.add(measured / predicted, alpha);
}

void CalibratedCostModel::observe_expert(int layer, int expert, double tokens, double joules, double seconds) {
  check_index(layer, expert);
  WATTMOE_REQUIRE(tokens > 0, "calibration: layer {} expert {}: tokens: expected > 0, got {}", layer, expert, tokens);
  WATTMOE_REQUIRE(std::isfinite(joules) && joules > 0, "calibration: layer {} expert {}: measured joules: expected a "
                  "finite number > 0, got {}", layer, expert, joules);
  WATTMOE_REQUIRE(std::isnan(seconds) || (std::isfinite(seconds) && seconds > 0),
                  "calibration: layer {} expert {}: measured seconds: expected > 0 or NaN, got {}", layer, expert, seconds);
  const double pj = base_->joules(layer, expert, tokens), ps = base_->seconds(layer, expert, tokens);
  WATTMOE_REQUIRE(pj > 0, "calibration: layer {} expert {}: the base model predicts {} J, cannot form a ratio", layer,
                  expert, pj);
  Factors& fe = expert_[size_t(layer)][size_t(expert)];
  Factors& fl = layer_[size_t(layer)];
  add_ratio(fe.joules, joules, pj, opt_.alpha);
  add_ratio(fl.joules, joules, pj, opt_.alpha);
  if (ps > 0) {
    add_ratio(fe.seconds, seconds, ps, opt_.alpha);
    add_ratio(fl.seconds, seconds, ps, opt_.alpha);
  }
}

void CalibratedCostModel::observe_layer(int layer, const std::vector<int>& counts, double joules, double seconds) {
  WATTMOE_REQUIRE(std::isfinite(joules) && joules > 0,
                  "calibration: layer {}: measured joules: expected a finite number > 0, got {}", layer, joules);
  WATTMOE_REQUIRE(std::isnan(seconds) || (std::isfinite(seconds) && seconds > 0),
                  "calibration: layer {}: measured seconds: expected > 0 or NaN, got {}", layer, seconds);
  const double pj = base_->layer_joules(layer, counts), ps = base_->layer_seconds(layer, counts);
  WATTMOE_REQUIRE(pj > 0, "calibration: layer {}: the base model predicts {} J for these counts (no tokens?)", layer, pj);
  Factors& fl = layer_[size_t(layer)];
  add_ratio(fl.joules, joules, pj, opt_.alpha);
  if (ps > 0) add_ratio(fl.seconds, seconds, ps, opt_.alpha);
}

}  // namespace wattmoe
