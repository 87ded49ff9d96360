#include "control/plant_gain.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate(const PlantGainConfig& c, const std::string& where) {
  WATTMOE_REQUIRE(c.min_points >= 3 && c.window >= c.min_points, "{}: window {} and min_points {}: expected "
                  "3 <= min_points <= window", where, c.window, c.min_points);
  WATTMOE_REQUIRE(c.min_u_spread > 0 && c.min_u_spread <= 1, "{}: min_u_spread = {}: expected (0, 1]", where,
                  c.min_u_spread);
  WATTMOE_REQUIRE(c.min_t > 0 && std::isfinite(c.min_t), "{}: min_t = {}: expected > 0", where, c.min_t);
  WATTMOE_REQUIRE(c.alpha > 0 && c.alpha <= 1, "{}: alpha = {}: expected (0, 1]", where, c.alpha);
  WATTMOE_REQUIRE(c.ki_min > 0 && c.ki_min <= c.ki_max && std::isfinite(c.ki_max),
                  "{}: ki_min = {}, ki_max = {}: expected 0 < ki_min <= ki_max", where, c.ki_min, c.ki_max);
}

PlantGainEstimator::PlantGainEstimator(PlantGainConfig c) : c_(c) { validate(c_); }

void PlantGainEstimator::add(double u, double y) {
  if (!std::isfinite(u) || !std::isfinite(y)) return;
  pts_.emplace_back(u, y);
  while (int(pts_.size()) > c_.window) pts_.pop_front();
}

void PlantGainEstimator::reset() { pts_.clear(); }

std::optional<PlantGainEstimator::Fit> PlantGainEstimator::fit() const {
  const int n = int(pts_.size());
  if (n < c_.min_points) return std::nullopt;
  double mu = 0, my = 0, lo = pts_.front().first, hi = lo;
  for (const auto& [u, y] : pts_) mu += u, my += y, lo = std::min(lo, u), hi = std::max(hi, u);
  if (hi - lo < c_.min_u_spread) return std::nullopt;
  mu /= n, my /= n;
  double sxx = 0, sxy = 0;
  for (const auto& [u, y] : pts_) sxx += (u - mu) * (u - mu), sxy += (u - mu) * (y - my);
  const double b = sxy / sxx;
  double ss = 0;
  for (const auto& [u, y] : pts_) ss += (y - my - b * (u - mu)) * (y - my - b * (u - mu));
  return Fit{b, std::sqrt(ss / (n - 2) / sxx)};
}

std::optional<double> PlantGainEstimator::slope() const {
  const std::optional<Fit> f = fit();
  if (!f || !(f->slope < 0) || -f->slope < c_.min_t * f->se) return std::nullopt;
  return f->slope;
}

std::optional<double> PlantGainEstimator::gain_bound() const {
  const std::optional<Fit> f = fit();
  if (!f) return std::nullopt;
  const double bound = std::max(-f->slope, 0.0) + c_.min_t * f->se;
  if (!(bound > 0) || !std::isfinite(bound)) return std::nullopt;
  return bound;
}

}  // namespace wattmoe
