#include "control/thermal_guard.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate(const ThermalConfig& c, const std::string& where) {
  auto finite_pos = [&](double v, const char* name, const char* what) {
    WATTMOE_REQUIRE(std::isfinite(v) && v > 0, "{}: {} = {}: expected {} > 0", where, name, v, what);
  };
  finite_pos(c.lookahead_s, "lookahead_s", "seconds");
  finite_pos(c.slope_window_s, "slope_window_s", "seconds");
  finite_pos(c.decay_per_s, "decay_per_s", "a rate in u per second");
  WATTMOE_REQUIRE(std::isfinite(c.min_fit_span_s) && c.min_fit_span_s >= 0 && c.min_fit_span_s <= c.slope_window_s,
                  "{}: min_fit_span_s = {}: expected seconds in [0, slope_window_s = {}]", where, c.min_fit_span_s,
                  c.slope_window_s);
  WATTMOE_REQUIRE(
      std::isfinite(c.margin_start_c) && std::isfinite(c.margin_full_c) && c.margin_full_c < c.margin_start_c,
      "{}: margin_full_c = {} must be below margin_start_c = {} (both finite, °C of predicted margin)", where,
      c.margin_full_c, c.margin_start_c);
  WATTMOE_REQUIRE(c.floor_max > 0 && c.floor_max <= 1, "{}: floor_max = {}: expected (0, 1]", where,
                  c.floor_max);
  WATTMOE_REQUIRE(c.jump_floor >= 0 && c.jump_floor <= 1, "{}: jump_floor = {}: expected [0, 1]", where,
                  c.jump_floor);
  WATTMOE_REQUIRE(std::isfinite(c.release_hysteresis_c) && c.release_hysteresis_c >= 0,
                  "{}: release_hysteresis_c = {}: expected finite °C >= 0", where, c.release_hysteresis_c);
  WATTMOE_REQUIRE(std::isnan(c.slowdown_temp_c) || std::isfinite(c.slowdown_temp_c),
                  "{}: slowdown_temp_c = {}: expected finite °C (or NaN: use the samples' thermal_margin_c)",
                  where, c.slowdown_temp_c);
}

double thermal_floor_for_margin(const ThermalConfig& c, double m) {
  if (std::isnan(m)) return 0.0;
  const double x = std::clamp((c.margin_start_c - m) / (c.margin_start_c - c.margin_full_c), 0.0, 1.0);
  return c.floor_max * x * x * (3.0 - 2.0 * x);
}

ThermalGuard::ThermalGuard(ThermalConfig c) : c_(c) {
  validate(c_);
}

bool ThermalGuard::critical() const {
  return c_.enabled && floor_ >= c_.floor_max && !std::isnan(predicted_) && predicted_ <= c_.margin_full_c;
}

double ThermalGuard::update(const Sample& s, double dt) {
  WATTMOE_REQUIRE(std::isfinite(dt) && dt > 0, "thermal guard: dt = {}: expected seconds > 0", dt);
  if (!c_.enabled) return floor_ = 0.0;
  const double t = std::isfinite(s.time_s) ? s.time_s : clock_ + dt;
  WATTMOE_REQUIRE(
      hist_.empty() || t >= hist_.back().first,
      "thermal guard: sample time {} s is before the previous one ({} s): expected a monotonic clock", t,
      hist_.back().first);
  clock_ = t;

  double m = s.thermal_margin_c;
  if (std::isnan(m) && std::isfinite(s.gpu_temp_c) && std::isfinite(c_.slowdown_temp_c))
    m = c_.slowdown_temp_c - s.gpu_temp_c;
  if (std::isfinite(m)) {
    hist_.emplace_back(t, m);
    while (hist_.size() > 2 && hist_.front().first < t - c_.slope_window_s) hist_.pop_front();
    slope_ = 0;
    if (hist_.size() >= 2 && hist_.back().first - hist_.front().first >= c_.min_fit_span_s) {
      double tm = 0, mm = 0;
      for (const auto& [ti, mi] : hist_) tm += ti, mm += mi;
      tm /= double(hist_.size()), mm /= double(hist_.size());
      double num = 0, den = 0;
      for (const auto& [ti, mi] : hist_) num += (ti - tm) * (mi - mm), den += (ti - tm) * (ti - tm);
      if (den > 0) slope_ = num / den;
    }
    margin_ = m;
    predicted_ = m + slope_ * c_.lookahead_s;
  }

  // The worse of now and the prediction: heating raises the floor early, cooling does not release it early.
  const double m_eff = std::isnan(predicted_) ? predicted_ : std::min(margin_, predicted_);
  const double rise = thermal_floor_for_margin(c_, m_eff);
  if (rise >= floor_) {
    floor_ = rise;
  } else {
    const double release = thermal_floor_for_margin(c_, m_eff - c_.release_hysteresis_c);
    if (release < floor_) floor_ = std::max(release, floor_ - c_.decay_per_s * dt);
  }
  bit_seen_ = s.clock_event_reasons && (*s.clock_event_reasons & kThermalReasonBits);
  if (bit_seen_) floor_ = std::max(floor_, c_.jump_floor);
  return floor_;
}

}  // namespace wattmoe
