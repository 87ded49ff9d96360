#include "energy/rapl_sensor.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/timer.h"

namespace wattmoe {

namespace fs = std::filesystem;

namespace {

// Reads one unsigned integer from a sysfs file; false (with why) if it cannot.
bool read_u64(const std::string& path, uint64_t* out, std::string* why) {
  std::ifstream in(path);
  if (!in.good()) {
    *why = fmt::format("cannot read {} (missing, or root-only since Linux 5.10)", path);
    return false;
  }
  std::string s;
  in >> s;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    *why = fmt::format("{}: expected an unsigned integer, got \"{}\"", path, s);
    return false;
  }
  return true;
}

}  // namespace

RaplSensor::RaplSensor(std::string root) : root_(std::move(root)) {
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) {
    reason_ = fmt::format("RAPL not available: {} does not exist", root_);
    return;
  }
  // Top-level package zones only: intel-rapl:0, intel-rapl:1 (not the core/dram sub-zones intel-rapl:0:0, whose
  // energy is already inside the package's).
  static const std::regex kPackage(R"(intel-rapl:[0-9]+)");
  std::vector<std::string> dirs;
  for (const auto& e : fs::directory_iterator(root_, ec))
    if (std::regex_match(e.path().filename().string(), kPackage)) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) {
    reason_ = fmt::format("RAPL not available: no intel-rapl:N package zone under {}", root_);
    return;
  }
  for (const std::string& d : dirs) {
    Zone z;
    z.dir = d;
    uint64_t probe = 0;
    std::string why;
    if (!read_u64(d + "/max_energy_range_uj", &z.max_range_uj, &why) || !read_u64(d + "/energy_uj", &probe, &why)) {
      reason_ = "RAPL not available: " + why;
      zones_.clear();
      return;
    }
    WATTMOE_REQUIRE(z.max_range_uj > 0, "RAPL {}/max_energy_range_uj: expected > 0, got 0", d);
    zones_.push_back(z);
  }
}

Capabilities RaplSensor::capabilities() const {
  Capabilities c;
  c.energy = c.power = available();
  c.counter_tick_s = 0.001;  // RAPL updates about every millisecond
  return c;
}

double RaplSensor::now() { return now_seconds(); }

Sample RaplSensor::read() {
  WATTMOE_REQUIRE(available(), "{}", reason_);
  Sample s;
  s.time_s = now_seconds();
  for (Zone& z : zones_) {
    uint64_t v = 0;
    std::string why;
    WATTMOE_REQUIRE(read_u64(z.dir + "/energy_uj", &v, &why), "RAPL read failed: {}", why);
    WATTMOE_REQUIRE(v <= z.max_range_uj, "RAPL {}/energy_uj: {} exceeds max_energy_range_uj {}", z.dir, v,
                    z.max_range_uj);
    if (z.seen) {
      // The counter restarts from 0 after max_energy_range_uj; one wrap between reads at most (reads are far
      // more frequent than the minutes a wrap takes).
      uint64_t d = v >= z.last_uj ? v - z.last_uj : z.max_range_uj - z.last_uj + v;
      total_uj_ += double(d);
    }
    z.last_uj = v;
    z.seen = true;
  }
  s.energy_j = total_uj_ * 1e-6;
  if (last_t_ >= 0 && s.time_s > last_t_) s.power_w = (s.energy_j - last_j_) / (s.time_s - last_t_);
  last_t_ = s.time_s;
  last_j_ = s.energy_j;
  return s;
}

}  // namespace wattmoe
