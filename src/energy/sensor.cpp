#include "energy/sensor.h"

#include <fmt/format.h>

#include <cstring>

namespace wattmoe {

namespace {
bool same_double(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0 || (std::isnan(a) && std::isnan(b)); }
}  // namespace

bool Sample::same_as(const Sample& o) const {
  return same_double(time_s, o.time_s) && same_double(power_w, o.power_w) && same_double(power_avg_w, o.power_avg_w) &&
         same_double(energy_j, o.energy_j) && same_double(gpu_temp_c, o.gpu_temp_c) &&
         same_double(mem_temp_c, o.mem_temp_c) && same_double(sm_clock_mhz, o.sm_clock_mhz) &&
         same_double(mem_clock_mhz, o.mem_clock_mhz) && clock_event_reasons == o.clock_event_reasons &&
         mem_used_bytes == o.mem_used_bytes && mem_total_bytes == o.mem_total_bytes &&
         same_double(power_limit_w, o.power_limit_w) && same_double(thermal_margin_c, o.thermal_margin_c);
}

std::string capabilities_str(const Capabilities& c) {
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(c.power, "power");
  add(c.power_avg, "power_avg");
  add(c.energy, "energy");
  add(c.gpu_temp, "gpu_temp");
  add(c.mem_temp, "mem_temp");
  add(c.sm_clock, "sm_clock");
  add(c.mem_clock, "mem_clock");
  add(c.clock_event_reasons, "clock_event_reasons");
  add(c.memory, "memory");
  add(c.power_limit, "power_limit");
  add(c.thermal_margin, "thermal_margin");
  return s.empty() ? "none" : s;
}

std::vector<std::string> clock_event_reason_names(uint64_t bits) {
  std::vector<std::string> names;
  uint64_t known = 0;
  for (const auto& r : kClockEventReasons) {
    known |= r.bit;
    if (bits & r.bit) names.emplace_back(r.name);
  }
  if (bits & ~known) names.push_back(fmt::format("unknown(0x{:x})", bits & ~known));
  return names;
}

std::string clock_event_reasons_str(uint64_t bits) {
  auto names = clock_event_reason_names(bits);
  if (names.empty()) return "none";
  std::string s = names[0];
  for (size_t i = 1; i < names.size(); ++i) s += "|" + names[i];
  return s;
}

}  // namespace wattmoe
