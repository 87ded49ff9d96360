#include "energy/replay_sensor.h"

#include <algorithm>

#include "core/error.h"
#include "energy/trace.h"

namespace wattmoe {

ReplaySensor::ReplaySensor(const std::string& path) : name_("replay:" + path), samples_(read_trace(path)) {
  WATTMOE_REQUIRE(!samples_.empty(), "trace {}: no samples in the file", path);
  init_caps();
}

ReplaySensor::ReplaySensor(std::vector<Sample> samples, std::string name)
    : name_(std::move(name)), samples_(std::move(samples)) {
  init_caps();
}

void ReplaySensor::init_caps() {
  Capabilities& c = caps_;
  c.virtual_time = true;
  for (const Sample& s : samples_) {
    c.power |= !std::isnan(s.power_w);
    c.power_avg |= !std::isnan(s.power_avg_w);
    c.energy |= !std::isnan(s.energy_j);
    c.gpu_temp |= !std::isnan(s.gpu_temp_c);
    c.mem_temp |= !std::isnan(s.mem_temp_c);
    c.sm_clock |= !std::isnan(s.sm_clock_mhz);
    c.mem_clock |= !std::isnan(s.mem_clock_mhz);
    c.clock_event_reasons |= s.clock_event_reasons.has_value();
    c.memory |= s.mem_used_bytes.has_value() || s.mem_total_bytes.has_value();
    c.power_limit |= !std::isnan(s.power_limit_w);
    c.thermal_margin |= !std::isnan(s.thermal_margin_c);
  }
}

Sample ReplaySensor::read() {
  WATTMOE_REQUIRE(next_ < samples_.size(), "{}: trace ended after {} samples", name_, samples_.size());
  return samples_[next_++];
}

double ReplaySensor::now() {
  if (samples_.empty()) return 0;
  return samples_[next_ == 0 ? 0 : next_ - 1].time_s;
}

const Sample& ReplaySensor::at(double t) const {
  WATTMOE_REQUIRE(!samples_.empty(), "{}: the trace is empty", name_);
  auto it = std::upper_bound(samples_.begin(), samples_.end(), t,
                             [](double v, const Sample& s) { return v < s.time_s; });
  return it == samples_.begin() ? *it : *(it - 1);
}

}  // namespace wattmoe
