#include "adapt/adapt_optimizer.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe {

AdaptOptimizerKind parse_adapt_optimizer(const std::string& name) {
  if (name == "sgd") return AdaptOptimizerKind::Sgd;
  if (name == "adamw") return AdaptOptimizerKind::AdamW;
  fail("unknown adaptation optimizer \"{}\" (expected sgd or adamw)", name);
}

const char* adapt_optimizer_name(AdaptOptimizerKind k) { return k == AdaptOptimizerKind::Sgd ? "sgd" : "adamw"; }

void validate_adapt_optim(const AdaptOptimConfig& c) {
  WATTMOE_REQUIRE(std::isfinite(c.lr) && c.lr > 0, "adaptation lr must be a finite number > 0, got {}", c.lr);
  WATTMOE_REQUIRE(std::isfinite(c.momentum) && c.momentum >= 0 && c.momentum < 1,
                  "adaptation momentum must be in [0, 1), got {}", c.momentum);
  WATTMOE_REQUIRE(std::isfinite(c.beta1) && c.beta1 >= 0 && c.beta1 < 1, "adamw beta1 must be in [0, 1), got {}",
                  c.beta1);
  WATTMOE_REQUIRE(std::isfinite(c.beta2) && c.beta2 >= 0 && c.beta2 < 1, "adamw beta2 must be in [0, 1), got {}",
                  c.beta2);
  WATTMOE_REQUIRE(std::isfinite(c.eps) && c.eps > 0, "adamw eps must be > 0, got {}", c.eps);
  WATTMOE_REQUIRE(std::isfinite(c.weight_decay) && c.weight_decay >= 0, "adamw weight_decay must be >= 0, got {}",
                  c.weight_decay);
  WATTMOE_REQUIRE(std::isfinite(c.clip) && c.clip >= 0, "gradient clip must be >= 0 (0 = off), got {}", c.clip);
}

double clip_grad_ranges(float* g, const std::vector<ParamRange>& ranges, double max_norm) {
  double ss = 0;
  for (const ParamRange& r : ranges)
    for (int64_t i = r.offset; i < r.offset + r.numel; ++i) ss += double(g[i]) * double(g[i]);
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / norm);
    for (const ParamRange& r : ranges)
      for (int64_t i = r.offset; i < r.offset + r.numel; ++i) g[i] *= s;
  }
  return norm;
}

AdaptOptimizer::AdaptOptimizer(const ParamLayout& layout, std::vector<uint8_t> trainable,
                               std::vector<ParamRange> ranges, AdaptOptimConfig cfg)
    : layout_(layout), trainable_(std::move(trainable)), ranges_(std::move(ranges)), cfg_(cfg) {
  validate_adapt_optim(cfg_);
  WATTMOE_CHECK(int64_t(trainable_.size()) == layout_.total());
  reset();
}

void AdaptOptimizer::reset() {
  if (cfg_.kind == AdaptOptimizerKind::AdamW) {
    adamw_ = std::make_unique<AdamW>(layout_, AdamWConfig{cfg_.lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay});
    adamw_->set_trainable(trainable_);
  } else if (sgd_) {
    sgd_->reset();
  } else {
    sgd_ = std::make_unique<SgdMomentum>(ranges_, layout_.total(), cfg_.momentum, cfg_.nesterov);
  }
}

double AdaptOptimizer::step(float* params, float* grads) {
  const double norm = clip_grad_ranges(grads, ranges_, cfg_.clip);
  if (adamw_)
    adamw_->step(params, grads, cfg_.lr);
  else
    sgd_->step(params, grads, cfg_.lr);
  return norm;
}

int64_t AdaptOptimizer::steps() const { return adamw_ ? adamw_->steps() : sgd_->steps(); }

}  // namespace wattmoe
