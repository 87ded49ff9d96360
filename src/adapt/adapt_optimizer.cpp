#include "adapt/adapt_optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/param_spans.h"

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
  for (auto [name, m] : {std::pair{"lr_router", c.lr_router}, {"lr_norms", c.lr_norms}, {"lr_lora", c.lr_lora}})
    WATTMOE_REQUIRE(std::isfinite(m) && m > 0, "adaptation {} multiplier must be a finite number > 0, got {}", name, m);
  WATTMOE_REQUIRE(c.lr_decay_steps >= 0, "adaptation lr_decay_steps must be >= 0 (0 = constant lr), got {}",
                  c.lr_decay_steps);
  WATTMOE_REQUIRE(std::isfinite(c.lr_min_ratio) && c.lr_min_ratio >= 0 && c.lr_min_ratio <= 1,
                  "adaptation lr_min_ratio must be in [0, 1], got {}", c.lr_min_ratio);
}

double scheduled_lr(const AdaptOptimConfig& c, int64_t t) {
  if (c.lr_decay_steps <= 0) return c.lr;
  return c.lr * std::max(c.lr_min_ratio, 1.0 / std::sqrt(1.0 + double(t) / double(c.lr_decay_steps)));
}

std::vector<ScaledRange> group_lr_ranges(const ParamGroups& g, const ModelConfig& mc, const ParamLayout& layout,
                                         const AdaptOptimConfig& c) {
  std::vector<ScaledRange> out;
  for (const ParamSpec& s : layout.specs()) {
    if (!in_param_groups(g, mc, s)) continue;
    const double m = s.kind == ParamKind::Router ? c.lr_router
                     : s.kind == ParamKind::Norm ? c.lr_norms
                     : s.kind == ParamKind::Lora ? c.lr_lora
                                                 : 1.0;
    if (m == 1.0) continue;
    if (!out.empty() && out.back().mult == m && out.back().range.offset + out.back().range.numel == s.offset)
      out.back().range.numel += s.numel;
    else
      out.push_back({{s.offset, s.numel}, m});
  }
  return out;
}

double clip_grad_ranges(float* g, const std::vector<ParamRange>& ranges, double max_norm) {
  const Spans spans = spans_of(ranges);
  const double norm = std::sqrt(span_sum(spans, [g](int64_t begin, int64_t end) {
    double ss = 0;
    for (int64_t i = begin; i < end; ++i) ss += double(g[i]) * double(g[i]);
    return ss;
  }));
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / norm);
    span_for_each(spans, [g, s](int64_t begin, int64_t end, int64_t) {
      for (int64_t i = begin; i < end; ++i) g[i] *= s;
    });
  }
  return norm;
}

AdaptOptimizer::AdaptOptimizer(const ParamLayout& layout, std::vector<uint8_t> trainable,
                               std::vector<ParamRange> ranges, AdaptOptimConfig cfg, std::vector<ScaledRange> scaled)
    : layout_(layout), trainable_(std::move(trainable)), ranges_(std::move(ranges)), cfg_(cfg),
      scaled_(std::move(scaled)) {
  for (const ScaledRange& s : scaled_) {
    WATTMOE_CHECK(s.range.offset >= 0 && s.range.numel >= 0 && s.range.offset + s.range.numel <= layout_.total());
    scaled_spans_.emplace_back(s.range.offset, s.range.offset + s.range.numel);
    scaled_starts_.push_back(scaled_elements_);
    scaled_mult_.push_back(s.mult);
    scaled_elements_ += s.range.numel;
  }
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
  const double lr = scheduled_lr(cfg_, steps());
  // Each scaled range's step times its multiplier: θ ← θ_before + mult·(θ_stepped − θ_before); before_ holds the
  // ranges' values back to back (flat positions of scaled_spans_).
  before_.resize(size_t(scaled_elements_));
  span_for_each(scaled_spans_, [&](int64_t begin, int64_t end, int64_t flat) {
    std::copy(params + begin, params + end, before_.begin() + flat);
  });
  if (adamw_)
    adamw_->step(params, grads, lr);
  else
    sgd_->step(params, grads, lr);
  span_for_each(scaled_spans_, [&](int64_t begin, int64_t end, int64_t flat) {
    const double mult = scaled_mult_[size_t(std::upper_bound(scaled_starts_.begin(), scaled_starts_.end(), flat) -
                                            scaled_starts_.begin()) - 1];
    for (int64_t i = begin, k = flat; i < end; ++i, ++k)
      params[i] = float(double(before_[size_t(k)]) + mult * (double(params[i]) - double(before_[size_t(k)])));
  });
  return norm;
}

int64_t AdaptOptimizer::steps() const { return adamw_ ? adamw_->steps() : sgd_->steps(); }

}  // namespace wattmoe
