// Helpers for the energy tests: a temporary directory per test, file writes, fake sensors, error assertions.
#pragma once
#include "../test_util.h"
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "../test_util.h"
#include "core/error.h"
#include "core/timer.h"
#include "energy/occupancy.h"
#include "energy/sensor.h"

namespace wattmoe::energy_test {

using test::TempDir;

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

using wattmoe::test::error_of;

// An H100 SXM's per-SM limits as cudaDeviceGetAttribute reports them.
inline SmLimits h100_limits() {
  SmLimits s;
  s.sm_count = 132;
  s.max_threads_per_sm = 2048;
  s.max_threads_per_block = 1024;
  s.max_blocks_per_sm = 32;
  s.regs_per_sm = 65536;
  s.regs_per_block = 65536;
  s.smem_per_sm = 233472;
  s.smem_per_block_optin = 232448;
  s.smem_reserved_per_block = 1024;
  s.device = "H100 (test limits)";
  return s;
}

// A scripted sensor: sample i has time t(i), constant power, counter = energy(i). Throws after `fail_after`
// successful reads (a GPU that falls off the bus).
class FakeSensor : public PowerSensor {
 public:
  Capabilities caps;
  std::function<Sample(size_t)> make;
  size_t fail_after = size_t(-1);
  size_t reads = 0;
  double clock = 0;

  std::string name() const override { return "fake"; }
  Capabilities capabilities() const override { return caps; }
  Sample read() override {
    if (reads >= fail_after) throw Error("fake: nvmlDeviceGetPowerUsage: GPU is lost (code 15)");
    Sample s = make(reads++);
    clock = s.time_s;
    return s;
  }
  double now() override { return caps.virtual_time ? clock : now_seconds(); }
};

}  // namespace wattmoe::energy_test
