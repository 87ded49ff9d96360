#include "energy/sim_params.h"

#include <cmath>

#include "core/error.h"
#include "energy/json_fields.h"

namespace wattmoe {

namespace {

struct NumField {
  const char* name;
  double SimGpuParams::*p;
};
const NumField kNum[] = {
    {"idle_w", &SimGpuParams::idle_w},
    {"active_w", &SimGpuParams::active_w},
    {"power_limit_w", &SimGpuParams::power_limit_w},
    {"pj_per_flop", &SimGpuParams::pj_per_flop},
    {"pj_per_byte", &SimGpuParams::pj_per_byte},
    {"clock_power_exponent", &SimGpuParams::clock_power_exponent},
    {"peak_flops", &SimGpuParams::peak_flops},
    {"bandwidth_bytes_per_s", &SimGpuParams::bandwidth_bytes_per_s},
    {"launch_overhead_s", &SimGpuParams::launch_overhead_s},
    {"max_sm_clock_mhz", &SimGpuParams::max_sm_clock_mhz},
    {"min_sm_clock_mhz", &SimGpuParams::min_sm_clock_mhz},
    {"mem_clock_mhz", &SimGpuParams::mem_clock_mhz},
    {"ambient_c", &SimGpuParams::ambient_c},
    {"thermal_resistance_c_per_w", &SimGpuParams::thermal_resistance_c_per_w},
    {"thermal_tau_s", &SimGpuParams::thermal_tau_s},
    {"initial_temp_c", &SimGpuParams::initial_temp_c},
    {"slowdown_temp_c", &SimGpuParams::slowdown_temp_c},
    {"slowdown_clock_per_c", &SimGpuParams::slowdown_clock_per_c},
    {"hw_slowdown_temp_c", &SimGpuParams::hw_slowdown_temp_c},
    {"hw_slowdown_clock_fraction", &SimGpuParams::hw_slowdown_clock_fraction},
    {"thermal_step_s", &SimGpuParams::thermal_step_s},
    {"counter_tick_s", &SimGpuParams::counter_tick_s},
    {"power_avg_window_s", &SimGpuParams::power_avg_window_s},
    {"sensor_fails_after_s", &SimGpuParams::sensor_fails_after_s},
};

}  // namespace

void validate(const SimGpuParams& p, const std::string& where) {
  for (const NumField& f : kNum)
    WATTMOE_REQUIRE(std::isfinite(p.*(f.p)), "{}: {}: expected a finite number, got {}", where, f.name, p.*(f.p));
  auto positive = [&](double v, const char* name) {
    WATTMOE_REQUIRE(v > 0, "{}: {}: expected a number > 0, got {}", where, name, v);
  };
  auto nonneg = [&](double v, const char* name) {
    WATTMOE_REQUIRE(v >= 0, "{}: {}: expected a number >= 0, got {}", where, name, v);
  };
  nonneg(p.idle_w, "idle_w");
  nonneg(p.active_w, "active_w");
  WATTMOE_REQUIRE(p.power_limit_w > p.idle_w + p.active_w,
                  "{}: power_limit_w: expected more than idle_w + active_w ({} W), got {} W", where,
                  p.idle_w + p.active_w, p.power_limit_w);
  nonneg(p.pj_per_flop, "pj_per_flop");
  nonneg(p.pj_per_byte, "pj_per_byte");
  WATTMOE_REQUIRE(p.clock_power_exponent >= 1, "{}: clock_power_exponent: expected >= 1 (power must grow with the "
                  "clock), got {}", where, p.clock_power_exponent);
  positive(p.peak_flops, "peak_flops");
  positive(p.bandwidth_bytes_per_s, "bandwidth_bytes_per_s");
  nonneg(p.launch_overhead_s, "launch_overhead_s");
  positive(p.max_sm_clock_mhz, "max_sm_clock_mhz");
  positive(p.min_sm_clock_mhz, "min_sm_clock_mhz");
  WATTMOE_REQUIRE(p.min_sm_clock_mhz <= p.max_sm_clock_mhz,
                  "{}: min_sm_clock_mhz: expected <= max_sm_clock_mhz ({}), got {}", where, p.max_sm_clock_mhz,
                  p.min_sm_clock_mhz);
  nonneg(p.mem_clock_mhz, "mem_clock_mhz");
  nonneg(p.thermal_resistance_c_per_w, "thermal_resistance_c_per_w");
  positive(p.thermal_tau_s, "thermal_tau_s");
  WATTMOE_REQUIRE(p.hw_slowdown_temp_c >= p.slowdown_temp_c,
                  "{}: hw_slowdown_temp_c: expected >= slowdown_temp_c ({}), got {}", where, p.slowdown_temp_c,
                  p.hw_slowdown_temp_c);
  nonneg(p.slowdown_clock_per_c, "slowdown_clock_per_c");
  WATTMOE_REQUIRE(p.hw_slowdown_clock_fraction > 0 && p.hw_slowdown_clock_fraction <= 1,
                  "{}: hw_slowdown_clock_fraction: expected a fraction in (0, 1], got {}", where,
                  p.hw_slowdown_clock_fraction);
  positive(p.thermal_step_s, "thermal_step_s");
  WATTMOE_REQUIRE(p.counter_tick_s >= 1e-6, "{}: counter_tick_s: expected a tick of at least 1e-6 s, got {}", where,
                  p.counter_tick_s);
  positive(p.power_avg_window_s, "power_avg_window_s");
  WATTMOE_REQUIRE(!p.name.empty(), "{}: name: expected a non-empty string", where);
}

Json sim_params_to_json(const SimGpuParams& p) {
  Json j = Json::object();
  j["name"] = p.name;
  for (const NumField& f : kNum) j[f.name] = p.*(f.p);
  j["mem_total_bytes"] = p.mem_total_bytes;
  return j;
}

SimGpuParams sim_params_from_json(const Json& j, const std::string& where) {
  JsonWhere w{where, ""};
  WATTMOE_REQUIRE(j.is_object(), "{}: expected a JSON object of simulator parameters", where);
  SimGpuParams p;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "name") {
      WATTMOE_REQUIRE(it->is_string(), "{}: name: expected a string", where);
      p.name = it->get<std::string>();
      continue;
    }
    if (k == "mem_total_bytes") {
      p.mem_total_bytes = json_uint(j, w, k);
      continue;
    }
    const NumField* f = nullptr;
    for (const NumField& n : kNum)
      if (k == n.name) f = &n;
    WATTMOE_REQUIRE(f, "{}: {}: unknown field (see sim_params.h for the list)", where, k);
    p.*(f->p) = json_number(j, w, k);
  }
  validate(p, where);
  return p;
}

SimGpuParams load_sim_params(const std::string& path) {
  return sim_params_from_json(parse_json_file(path, "sim params"), "sim params " + path);
}

void save_sim_params(const std::string& path, const SimGpuParams& p) {
  validate(p, "sim params " + path);
  write_json_file(path, sim_params_to_json(p));
}

}  // namespace wattmoe
