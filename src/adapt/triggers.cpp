#include "adapt/triggers.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

bool TriggerConfig::any_enabled() const {
  return always || every > 0 || !std::isnan(power_above_w) || !std::isnan(thermal_margin_below_c) ||
         clock_event_mask != 0 || on_drift || complexity_factor > 0 || adaptive;
}

void validate_triggers(const TriggerConfig& c) {
  WATTMOE_REQUIRE(c.every >= 0, "trigger every must be >= 1 (or 0 = off), got {}", c.every);
  WATTMOE_REQUIRE(std::isnan(c.power_above_w) || (std::isfinite(c.power_above_w) && c.power_above_w > 0),
                  "trigger power_above_w must be a finite number of watts > 0 (NaN = off), got {}", c.power_above_w);
  WATTMOE_REQUIRE(std::isnan(c.thermal_margin_below_c) || std::isfinite(c.thermal_margin_below_c),
                  "trigger thermal_margin_below_c must be finite (NaN = off), got {}", c.thermal_margin_below_c);
  WATTMOE_REQUIRE(c.drift_burst >= 1, "trigger drift_burst must be >= 1 window, got {}", c.drift_burst);
  WATTMOE_REQUIRE(c.complexity_factor == 0 || (std::isfinite(c.complexity_factor) && c.complexity_factor >= 1),
                  "trigger complexity_factor must be >= 1 (or 0 = off), got {}", c.complexity_factor);
  WATTMOE_REQUIRE(std::isfinite(c.complexity_alpha) && c.complexity_alpha > 0 && c.complexity_alpha <= 1,
                  "trigger complexity_alpha must be in (0, 1], got {}", c.complexity_alpha);
  WATTMOE_REQUIRE(c.adaptive_max_interval >= 1, "trigger adaptive_max_interval must be >= 1, got {}",
                  c.adaptive_max_interval);
  WATTMOE_REQUIRE(std::isfinite(c.adaptive_min_gain), "trigger adaptive_min_gain must be finite, got {}",
                  c.adaptive_min_gain);
}

Triggers::Triggers(TriggerConfig cfg) : cfg_(cfg) { validate_triggers(cfg_); }

TriggerDecision Triggers::decide(const TriggerInput& in) {
  TriggerDecision d;
  auto fire = [&](const char* why) {
    d.fire = true;
    if (!d.reason.empty()) d.reason += '|';
    d.reason += why;
  };
  if (cfg_.always) fire("always");
  if (cfg_.every > 0 && in.window % cfg_.every == 0) fire("every");
  const Sample* s = in.sensor;
  if (s && !std::isnan(cfg_.power_above_w) && std::isfinite(s->power_w) && s->power_w > cfg_.power_above_w)
    fire("power");
  const bool hot_margin = s && !std::isnan(cfg_.thermal_margin_below_c) && std::isfinite(s->thermal_margin_c) &&
                          s->thermal_margin_c < cfg_.thermal_margin_below_c;
  const bool hot_clock = s && cfg_.clock_event_mask != 0 && s->clock_event_reasons &&
                         (*s->clock_event_reasons & cfg_.clock_event_mask) != 0;
  if (hot_margin || hot_clock) fire("thermal");
  if (cfg_.on_drift) {
    if (in.drift) burst_left_ = cfg_.drift_burst;
    if (burst_left_ > 0) {
      --burst_left_;
      fire("drift");
    }
  }
  if (cfg_.complexity_factor > 0 && std::isfinite(in.loss)) {
    if (ema_ && in.loss > cfg_.complexity_factor * *ema_) fire("complexity");
    ema_ = ema_ ? (1 - cfg_.complexity_alpha) * *ema_ + cfg_.complexity_alpha * in.loss : in.loss;
  }
  if (cfg_.adaptive) {
    if (in.drift) interval_ = 1, since_fire_ = std::numeric_limits<int32_t>::max();
    ++since_fire_;
    if (since_fire_ >= interval_) {
      since_fire_ = 0;
      fire("adaptive");
    }
  }
  return d;
}

void Triggers::report_gain(double gain) {
  if (!cfg_.adaptive || !std::isfinite(gain)) return;
  if (gain < cfg_.adaptive_min_gain) interval_ = std::min(2 * interval_, cfg_.adaptive_max_interval);
}

}  // namespace wattmoe
