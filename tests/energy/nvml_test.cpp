#include "energy/nvml_sensor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "energy/meter.h"

namespace wattmoe {
namespace {

// CPU machines have no driver: construction must fail with a clear Error, never crash. On a GPU machine the
// same test reads real values, so it also checks our hand-declared NVML types against the driver.
TEST(Nvml, AbsentGivesAClearErrorPresentGivesSaneSamples) {
  std::unique_ptr<NvmlSensor> s;
  try {
    s = std::make_unique<NvmlSensor>(0);
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(m.rfind("NVML not available: ", 0) == 0 || m.rfind("no GPU: ", 0) == 0) << m;
    GTEST_SKIP() << m;
  }
  const Capabilities c = s->capabilities();
  EXPECT_FALSE(c.virtual_time);
  Sample a = s->read();
  EXPECT_GT(a.time_s, 0);
  if (c.power) {
    EXPECT_GT(a.power_w, 10) << "instant power (field 186) in W";
  }
  if (c.power_avg) {
    EXPECT_GT(a.power_avg_w, 10);
  }
  if (c.power_limit) {
    EXPECT_GE(a.power_limit_w, 100);
  }
  if (c.gpu_temp) {
    EXPECT_GT(a.gpu_temp_c, 5);
  }
  if (c.sm_clock) {
    EXPECT_GT(a.sm_clock_mhz, 100);
  }
  if (c.memory) {
    EXPECT_GT(*a.mem_total_bytes, uint64_t(1) << 30);
  }
  if (c.energy) {
    Sample b = s->read();
    EXPECT_GE(b.energy_j, a.energy_j);
  }
  std::printf("nvml: %s (%s)\n", s->name().c_str(), capabilities_str(c).c_str());

  MeterOptions opt;
  opt.sample_hz = 20;
  EnergyMeter meter(*s, opt);
  meter.begin("idle");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  WindowResult r = meter.wait(meter.end("idle"));
  EXPECT_TRUE(r.complete) << r.error;
  EXPECT_GT(r.joules, 0);
  std::printf("nvml idle 0.5 s: %.3f J (%s), integrated %.3f J, mean %.1f W, peak %.1f W, %zu samples\n", r.joules,
              energy_method_name(r.method), r.joules_integrated, r.mean_w, r.peak_w, r.samples);
}

}  // namespace
}  // namespace wattmoe
