// RaplSensor: CPU package energy from Linux powercap (intel-rapl:N/energy_uj, summed over packages).
// Each package counter wraps at its max_energy_range_uj; we unwrap per package (a sum of wrapped counters
// cannot be unwrapped), so energy_j is monotonic from the first read. power_w is derived from consecutive
// reads. When nothing is readable (no RAPL, or energy_uj is root-only) available() is false and reason() says
// why; read() then throws. The root directory is a parameter so tests can point it at a fake sysfs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "energy/sensor.h"

namespace wattmoe {

class RaplSensor : public PowerSensor {
 public:
  explicit RaplSensor(std::string root = "/sys/class/powercap");

  bool available() const { return reason_.empty(); }
  const std::string& reason() const { return reason_; }
  size_t packages() const { return zones_.size(); }

  std::string name() const override { return "rapl"; }
  Capabilities capabilities() const override;
  Sample read() override;
  double now() override;

 private:
  struct Zone {
    std::string dir;
    uint64_t max_range_uj = 0;
    uint64_t last_uj = 0;
    bool seen = false;
  };
  std::string root_, reason_;
  std::vector<Zone> zones_;
  double total_uj_ = 0;  // unwrapped sum since the first read
  double last_t_ = -1, last_j_ = 0;
};

}  // namespace wattmoe
