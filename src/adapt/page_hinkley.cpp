#include "adapt/page_hinkley.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate_page_hinkley(const PageHinkleyConfig& c) {
  WATTMOE_REQUIRE(std::isfinite(c.delta) && c.delta >= 0, "page-hinkley delta must be >= 0, got {}", c.delta);
  WATTMOE_REQUIRE(std::isfinite(c.lambda) && c.lambda > 0, "page-hinkley lambda must be > 0, got {}", c.lambda);
  WATTMOE_REQUIRE(c.min_samples >= 1, "page-hinkley min_samples must be >= 1, got {}", c.min_samples);
}

PageHinkley::PageHinkley(PageHinkleyConfig cfg) : cfg_(cfg) { validate_page_hinkley(cfg_); }

void PageHinkley::reset() { n_ = 0, mean_ = 0, m_ = 0, m_min_ = 0; }

bool PageHinkley::update(double x) {
  WATTMOE_REQUIRE(std::isfinite(x), "page-hinkley: the monitored value is not finite ({})", x);
  ++n_;
  mean_ += (x - mean_) / double(n_);
  m_ += x - mean_ - cfg_.delta;
  m_min_ = std::min(m_min_, m_);
  if (n_ >= cfg_.min_samples && m_ - m_min_ > cfg_.lambda) {
    reset();
    return true;
  }
  return false;
}

}  // namespace wattmoe
