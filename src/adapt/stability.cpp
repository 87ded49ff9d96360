#include "adapt/stability.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate_collapse_guard(const CollapseGuardConfig& c) {
  WATTMOE_REQUIRE(std::isfinite(c.entropy_floor) && c.entropy_floor >= 0,
                  "collapse guard entropy_floor must be >= 0 nats (0 = off), got {}", c.entropy_floor);
  WATTMOE_REQUIRE(std::isfinite(c.max_expert_share) && c.max_expert_share >= 0 && c.max_expert_share <= 1,
                  "collapse guard max_expert_share must be in (0, 1] (0 = off), got {}", c.max_expert_share);
  WATTMOE_REQUIRE(std::isfinite(c.loss_margin) && c.loss_margin >= 0,
                  "collapse guard loss_margin must be >= 0 (0 = off), got {}", c.loss_margin);
  WATTMOE_REQUIRE(std::isfinite(c.loss_alpha) && c.loss_alpha > 0 && c.loss_alpha <= 1,
                  "collapse guard loss_alpha must be in (0, 1], got {}", c.loss_alpha);
}

CollapseGuard::CollapseGuard(CollapseGuardConfig cfg) : cfg_(cfg) { validate_collapse_guard(cfg_); }

std::string CollapseGuard::check(const WindowStats& s, bool adapted) {
  std::string why;
  if (!std::isfinite(s.loss) || !std::isfinite(s.entropy)) return adapted ? "non_finite" : "";
  if (adapted && cfg_.entropy_floor > 0 && s.entropy < cfg_.entropy_floor) why = "entropy";
  if (adapted && why.empty() && cfg_.max_expert_share > 0 && s.counts) {
    for (const auto& row : *s.counts) {
      int64_t total = 0, top = 0;
      for (int64_t c : row) total += c, top = std::max(top, c);
      if (total > 0 && double(top) > cfg_.max_expert_share * double(total)) {
        why = "expert_share";
        break;
      }
    }
  }
  if (cfg_.loss_margin > 0) {
    if (adapted && why.empty() && ref_ && s.loss > (1 + cfg_.loss_margin) * *ref_) why = "loss";
    if (!ref_ && !adapted) ref_ = s.loss;
    else if (ref_) ref_ = (1 - cfg_.loss_alpha) * *ref_ + cfg_.loss_alpha * s.loss;
  }
  return why;
}

void validate_source_guard(const SourceGuardConfig& c) {
  WATTMOE_REQUIRE(c.check_every >= 0, "source guard check_every must be >= 1 window (0 = off), got {}", c.check_every);
  WATTMOE_REQUIRE(std::isfinite(c.margin) && c.margin >= 0,
                  "source guard margin must be a relative loss excess >= 0, got {}", c.margin);
  WATTMOE_REQUIRE(std::isfinite(c.alpha) && c.alpha > 0 && c.alpha <= 1, "source guard alpha must be in (0, 1], got {}",
                  c.alpha);
  WATTMOE_REQUIRE(c.backoff >= 0, "source guard backoff must be >= 0 windows, got {}", c.backoff);
  WATTMOE_REQUIRE(c.max_backoff >= c.backoff, "source guard max_backoff must be >= backoff ({}), got {}", c.backoff,
                  c.max_backoff);
  WATTMOE_REQUIRE(c.promote_after >= 1, "source guard promote_after must be >= 1 comparison, got {}", c.promote_after);
}

SourceGuard::SourceGuard(SourceGuardConfig cfg)
    : cfg_((validate_source_guard(cfg), cfg)), probation_(cfg_.check_every > 0 && cfg_.probation) {}

bool SourceGuard::begin_window() {
  if (backoff_left_ == 0) return false;
  --backoff_left_;
  return true;
}

bool SourceGuard::due(bool adapted) {
  if (!enabled() || !adapted) return false;
  if (probation_) return true;
  return since_++ % cfg_.check_every == 0;
}

std::string SourceGuard::record(double loss, double source_loss) {
  const double keep = 1 - cfg_.alpha;
  num_ = keep * num_ + cfg_.alpha * loss;
  den_ = keep * den_ + cfg_.alpha * source_loss;
  ++compared_;
  const double rel = relative();
  if (!std::isfinite(rel) || rel > cfg_.margin) {
    const int64_t len = std::min<int64_t>(int64_t(cfg_.backoff) << std::min(failures_, 30), cfg_.max_backoff);
    backoff_left_ = int(len);
    if (len < cfg_.max_backoff) ++failures_;
    num_ = den_ = 0, since_ = compared_ = 0;
    probation_ = cfg_.probation;
    return "worse_than_source";
  }
  if (rel < -cfg_.margin) {
    if (!probation_) {
      failures_ = std::max(failures_ - 1, 0);
    } else if (compared_ >= cfg_.promote_after) {
      probation_ = false, ++promotions_;
      failures_ = std::max(failures_ - 1, 0);
      since_ = 1;  // θ was just compared: the next live check comes N windows on
    }
  }
  return "";
}

EmaTeacher::EmaTeacher(double momentum, std::vector<ParamRange> ranges, std::vector<float> source)
    : m_(momentum), ranges_(std::move(ranges)), theta_(std::move(source)) {
  WATTMOE_REQUIRE(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
                  "teacher momentum must be in [0, 1), got {}", momentum);
}

void EmaTeacher::update(const float* p) {
  const float m = float(m_), a = float(1 - m_);
  for (const ParamRange& r : ranges_)
    for (int64_t i = r.offset; i < r.offset + r.numel; ++i) theta_[size_t(i)] = m * theta_[size_t(i)] + a * p[i];
}

void EmaTeacher::reset(const float* source) {
  for (const ParamRange& r : ranges_) std::copy(source + r.offset, source + r.offset + r.numel, theta_.begin() + r.offset);
}

}  // namespace wattmoe
