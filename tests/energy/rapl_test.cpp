#include "energy/rapl_sensor.h"

#include <gtest/gtest.h>

#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;
using energy_test::TempDir;
using energy_test::write_text;

void set_zone(const TempDir& d, const std::string& zone, uint64_t energy_uj, uint64_t max_uj) {
  write_text(d.file(zone + "/energy_uj"), std::to_string(energy_uj) + "\n");
  write_text(d.file(zone + "/max_energy_range_uj"), std::to_string(max_uj) + "\n");
}

TEST(Rapl, SumsPackagesAndUnwrapsEachCounter) {
  TempDir d;
  const uint64_t max0 = 262143328850, max1 = 10000000;
  set_zone(d, "intel-rapl:0", max0 - 500000, max0);  // about to wrap
  set_zone(d, "intel-rapl:1", 10, max1);
  set_zone(d, "intel-rapl:0:0", 5, max1);             // a sub-zone (core): inside the package, not added
  write_text(d.file("intel-rapl-mmio:0/energy_uj"), "999\n");
  RaplSensor r(d.path());
  ASSERT_TRUE(r.available()) << r.reason();
  EXPECT_EQ(r.packages(), 2u);
  EXPECT_TRUE(r.capabilities().energy);
  Sample a = r.read();
  EXPECT_EQ(a.energy_j, 0);
  EXPECT_TRUE(std::isnan(a.power_w));  // no previous read to difference against

  set_zone(d, "intel-rapl:0", 1500000, max0);  // wrapped: 500000 to the top, then 1500000
  set_zone(d, "intel-rapl:1", 3000010, max1);
  Sample b = r.read();
  EXPECT_NEAR(b.energy_j, 2.0 + 3.0, 1e-9);
  EXPECT_FALSE(std::isnan(b.power_w));

  set_zone(d, "intel-rapl:0", 1500001, max0);
  set_zone(d, "intel-rapl:1", 3000010, max1);
  EXPECT_NEAR(r.read().energy_j, 5.000001, 1e-9);
}

TEST(Rapl, UnavailableSaysWhyAndReadThrows) {
  TempDir d;
  RaplSensor missing(d.file("nope"));
  EXPECT_FALSE(missing.available());
  EXPECT_NE(missing.reason().find("does not exist"), std::string::npos) << missing.reason();
  std::string e = error_of([&] { missing.read(); });
  EXPECT_NE(e.find("RAPL not available"), std::string::npos) << e;

  RaplSensor empty(d.path());
  EXPECT_FALSE(empty.available());
  EXPECT_NE(empty.reason().find("no intel-rapl:N package zone"), std::string::npos) << empty.reason();

  write_text(d.file("intel-rapl:0/max_energy_range_uj"), "100\n");  // energy_uj missing (root-only on real kernels)
  RaplSensor unreadable(d.path());
  EXPECT_FALSE(unreadable.available());
  EXPECT_NE(unreadable.reason().find("energy_uj"), std::string::npos) << unreadable.reason();

  write_text(d.file("intel-rapl:0/energy_uj"), "12abc\n");
  RaplSensor garbage(d.path());
  EXPECT_FALSE(garbage.available());
  EXPECT_NE(garbage.reason().find("expected an unsigned integer"), std::string::npos) << garbage.reason();
}

TEST(Rapl, RealSysfsDoesNotCrash) {
  RaplSensor r;  // this machine may or may not expose RAPL
  if (r.available()) {
    EXPECT_GE(r.read().energy_j, 0);
  } else {
    EXPECT_FALSE(r.reason().empty());
  }
}

}  // namespace
}  // namespace wattmoe
