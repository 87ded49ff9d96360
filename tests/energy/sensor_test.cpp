#include "energy/sensor.h"

#include <gtest/gtest.h>

namespace wattmoe {
namespace {

TEST(ClockEventReasons, DecodesEveryNvmlBit) {
  EXPECT_EQ(clock_event_reasons_str(0), "none");
  EXPECT_EQ(clock_event_reasons_str(0x1), "gpu_idle");
  EXPECT_EQ(clock_event_reasons_str(0x4 | 0x20), "sw_power_cap|sw_thermal_slowdown");
  auto all = clock_event_reason_names(0x1ff);
  ASSERT_EQ(all.size(), 9u);
  EXPECT_EQ(all[1], "applications_clocks_setting");
  EXPECT_EQ(all[3], "hw_slowdown");
  EXPECT_EQ(all[4], "sync_boost");
  EXPECT_EQ(all[6], "hw_thermal_slowdown");
  EXPECT_EQ(all[7], "hw_power_brake_slowdown");
  EXPECT_EQ(all[8], "display_clock_setting");
  EXPECT_EQ(clock_event_reasons_str(0x8 | 0x1000), "hw_slowdown|unknown(0x1000)");
}

TEST(SensorSample, SameAsTreatsAbsentFieldsAsEqual) {
  Sample a, b;
  a.time_s = b.time_s = 1.5;
  EXPECT_TRUE(a.same_as(b));
  b.mem_used_bytes = 7;
  EXPECT_FALSE(a.same_as(b));
  a.mem_used_bytes = 7;
  a.power_w = 100;
  EXPECT_FALSE(a.same_as(b));
}

TEST(SensorCapabilities, ListsAvailableFields) {
  Capabilities c;
  EXPECT_EQ(capabilities_str(c), "none");
  c.power = c.energy = c.thermal_margin = true;
  EXPECT_EQ(capabilities_str(c), "power energy thermal_margin");
}

}  // namespace
}  // namespace wattmoe
