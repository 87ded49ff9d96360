#include "energy/meter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "energy/sim_gpu.h"
#include "energy/sim_sensor.h"
#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;
using energy_test::FakeSensor;

const Work kGemm{2.0 * 8192 * 8192 * 8192, 3.0 * 8192 * 8192 * 2, "gemm8192"};
const Work kStream{1e9, 1e9, "stream1GB"};

TEST(Meter, WindowsNestAndTheOuterContainsTheInner) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  meter.begin("step");
  for (int i = 0; i < 200; ++i) gpu.run(kStream);
  meter.begin("step.moe");
  for (int i = 0; i < 300; ++i) {
    gpu.run(kGemm);
    meter.poll();  // the sim is sampled when asked: integrated power needs samples inside the window
  }
  EXPECT_EQ(meter.depth(), 2);
  size_t inner = meter.end("step.moe");
  gpu.idle(0.3);
  size_t outer = meter.end("step");
  ASSERT_TRUE(meter.ready(inner) && meter.ready(outer));
  auto rs = meter.results();
  ASSERT_EQ(rs.size(), 2u);
  const WindowResult& in = rs[inner];
  const WindowResult& out = rs[outer];
  EXPECT_EQ(in.name, "step.moe");
  EXPECT_EQ(in.depth, 1);
  EXPECT_EQ(out.depth, 0);
  EXPECT_LE(out.begin_s, in.begin_s);
  EXPECT_GE(out.end_s, in.end_s);
  EXPECT_GT(out.joules, in.joules);
  EXPECT_GT(out.joules_integrated, in.joules_integrated);
  EXPECT_EQ(in.method, EnergyMethod::Counter);
  // The inner window ran only power-capped GEMMs: its clock-event time is all sw_power_cap and its power the cap.
  EXPECT_NEAR(in.reason_seconds[2], in.seconds, 1e-9);
  EXPECT_NEAR(in.peak_w, 700, 1);
  EXPECT_NEAR(in.joules_integrated, gpu.params().power_limit_w * in.seconds, 0.01 * 700 * in.seconds);
  EXPECT_GT(out.max_temp_c, 0);
  EXPECT_GT(out.reason_seconds[0], 0.29);  // gpu_idle during the idle tail
}

// A window per step, back to back inside an outer one (what the server's scheduler does, serve/step_energy.h): on a
// virtual-time sensor the steps' energies add up to the outer window's, and discarding final results keeps ids stable.
TEST(Meter, BackToBackStepsAddUpToTheOuterWindowAndCanBeDiscarded) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  meter.begin("serve");
  double sum = 0;
  size_t last = 0;
  for (int i = 0; i < 50; ++i) {
    meter.begin("step");
    gpu.run(i % 3 ? kStream : kGemm);
    gpu.idle(0.003);
    last = meter.end("step");
    sum += meter.wait(last).joules;
    meter.discard_through(last);
  }
  const WindowResult outer = meter.wait(meter.end("serve"));
  EXPECT_EQ(last, 49u);
  EXPECT_NEAR(sum, outer.joules, 1e-9 * outer.joules);
  EXPECT_GT(outer.joules, 0);
  const std::vector<WindowResult> kept = meter.results();
  ASSERT_EQ(kept.size(), 1u);  // the steps were discarded, the outer window is kept
  EXPECT_EQ(kept[0].name, "serve");
}

TEST(Meter, EndMustMatchTheInnermostBegin) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  std::string e = error_of([&] { meter.end("x"); });
  EXPECT_NE(e.find("end('x') without a matching begin"), std::string::npos) << e;
  meter.begin("outer");
  meter.begin("inner");
  e = error_of([&] { meter.end("outer"); });
  EXPECT_NE(e.find("innermost open window is 'inner'"), std::string::npos) << e;
  meter.end("inner");
  meter.end("outer");
  EXPECT_EQ(meter.depth(), 0);
}

TEST(Meter, CounterAndIntegratedPowerAgreeOverOneSecond) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  gpu.idle(0.05);  // start between counter ticks
  meter.begin("steady");
  const double t0 = gpu.time();
  while (gpu.time() - t0 < 1.2) {
    gpu.run(kGemm);
    meter.poll();
  }
  WindowResult r = meter.wait(meter.end("steady"));
  ASSERT_GE(r.seconds, 1.0);
  EXPECT_FALSE(r.warning);
  EXPECT_EQ(r.method, EnergyMethod::Counter);
  EXPECT_NEAR(r.joules_counter / r.joules_integrated, 1.0, 0.01);
  EXPECT_NEAR(r.mean_w, 700, 700 * 0.01);
  EXPECT_GT(r.samples, 100u);
}

TEST(Meter, ShortWindowIsFlagged) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  meter.begin("short");
  gpu.idle(0.05);
  WindowResult s = meter.wait(meter.end("short"));
  EXPECT_TRUE(s.warning);
  EXPECT_NE(s.warning_msg.find("shorter than 2 x the energy counter tick"), std::string::npos) << s.warning_msg;
  meter.begin("long");
  gpu.idle(0.5);
  WindowResult l = meter.wait(meter.end("long"));
  EXPECT_FALSE(l.warning);
  EXPECT_NEAR(l.joules, 40, 0.1);
}

TEST(Meter, FallsBackToIntegratedPowerWithoutACounter) {
  FakeSensor fake;
  fake.caps.virtual_time = true;
  fake.caps.power = true;
  fake.make = [](size_t i) {
    Sample s;
    s.time_s = 0.1 * double(i);
    s.power_w = 100 + 10 * double(i);  // a ramp: the trapezoid is exact for it
    return s;
  };
  EnergyMeter meter(fake);  // reads sample 0
  meter.begin("ramp");      // sample 1 at 0.1 s
  for (int i = 0; i < 8; ++i) meter.poll();
  WindowResult r = meter.wait(meter.end("ramp"));  // sample 10 at 1.0 s
  EXPECT_EQ(r.method, EnergyMethod::Integrated);
  EXPECT_TRUE(std::isnan(r.joules_counter));
  EXPECT_DOUBLE_EQ(r.seconds, 0.9);
  EXPECT_NEAR(r.joules, 0.5 * (110 + 200) * 0.9, 1e-9);
  EXPECT_EQ(r.peak_w, 200);
}

TEST(Meter, CounterWrapAroundIsUnwrapped) {
  FakeSensor fake;
  fake.caps.virtual_time = true;
  fake.caps.energy = true;
  fake.caps.counter_wrap_j = 100;
  fake.make = [](size_t i) {
    Sample s;
    s.time_s = double(i);
    s.energy_j = std::fmod(90.0 + 7.0 * double(i), 100.0);  // 90, 97, 4 (wrapped), 11, ...
    return s;
  };
  EnergyMeter meter(fake);
  meter.begin("w");
  for (int i = 0; i < 3; ++i) meter.poll();
  WindowResult r = meter.wait(meter.end("w"));
  EXPECT_EQ(r.method, EnergyMethod::Counter);
  EXPECT_NEAR(r.joules, 7.0 * 4, 1e-9);
}

TEST(Meter, SensorThatDiesMidRunKeepsEarlierResults) {
  FakeSensor fake;
  fake.caps.virtual_time = true;
  fake.caps.power = fake.caps.energy = true;
  fake.make = [](size_t i) {
    Sample s;
    s.time_s = 0.5 * double(i);
    s.power_w = 200;
    s.energy_j = 100.0 * double(i);
    return s;
  };
  fake.fail_after = 6;
  EnergyMeter meter(fake);  // sample 0
  meter.begin("before");    // 1
  meter.poll();             // 2
  size_t done = meter.end("before");  // 3
  meter.begin("during");    // 4
  meter.poll();             // 5
  meter.poll();             // the sensor throws: recorded, not thrown
  EXPECT_FALSE(meter.poll().has_value());
  size_t cut = meter.end("during");
  ASSERT_TRUE(meter.fault().has_value());
  EXPECT_NE(meter.fault()->find("GPU is lost"), std::string::npos);

  WindowResult a = meter.wait(done), b = meter.wait(cut);
  EXPECT_TRUE(a.complete);
  EXPECT_NEAR(a.joules, 200, 1e-9);
  EXPECT_FALSE(b.complete);
  EXPECT_NE(b.error.find("GPU is lost"), std::string::npos);
  EXPECT_NEAR(b.joules, 100, 1e-9);  // the part measured before the fault
  EXPECT_DOUBLE_EQ(b.covered_s, 0.5);
  EXPECT_EQ(meter.samples().size(), 6u);
  // New windows after the fault still nest and end without throwing.
  meter.begin("after");
  EXPECT_FALSE(meter.wait(meter.end("after")).complete);
}

TEST(Meter, SensorThatDiesAtEndClosesTheWindow) {
  FakeSensor fake;
  fake.caps.virtual_time = true;
  fake.caps.power = true;
  fake.make = [](size_t i) {
    Sample s;
    s.time_s = double(i);
    s.power_w = 50;
    return s;
  };
  fake.fail_after = 3;
  EnergyMeter meter(fake);  // 0
  meter.begin("outer");     // 1
  meter.begin("inner");     // 2
  size_t inner = meter.end("inner");  // the read throws here
  size_t outer = meter.end("outer");
  WindowResult a = meter.wait(inner), b = meter.wait(outer);
  EXPECT_FALSE(a.complete);
  EXPECT_FALSE(b.complete);
  EXPECT_NEAR(b.joules, 50, 1e-9);  // 1 s measured before the fault
  EXPECT_DOUBLE_EQ(b.covered_s, 1.0);
  EXPECT_EQ(meter.results().size(), 2u);
}

// Real-time sensor on the background sampler thread: 100 W, counter = 100 J/s.
FakeSensor realtime_fake(double t0) {
  FakeSensor f;
  f.caps.power = f.caps.energy = true;
  f.make = [t0](size_t) {
    Sample s;
    s.time_s = now_seconds();
    s.power_w = 100;
    s.energy_j = 100 * (s.time_s - t0);
    return s;
  };
  return f;
}

TEST(Meter, BackgroundSamplerMeasuresARealTimeWindow) {
  FakeSensor fake = realtime_fake(now_seconds());
  int syncs = 0;
  MeterOptions opt;
  opt.sample_hz = 50;
  opt.sync = [&] { ++syncs; };
  EnergyMeter meter(fake, opt);
  meter.begin("sleep");
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  size_t id = meter.end("sleep");
  WindowResult r = meter.wait(id);
  EXPECT_EQ(syncs, 2);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.method, EnergyMethod::Counter);
  EXPECT_NEAR(r.joules, 100 * r.seconds, 1e-6);
  EXPECT_NEAR(r.joules_integrated, 100 * r.seconds, 1e-6);
  EXPECT_GE(r.samples, 5u);
  EXPECT_GE(meter.samples_taken(), r.samples);
}

TEST(Meter, BackgroundSensorThatDiesKeepsEarlierSamples) {
  FakeSensor fake = realtime_fake(now_seconds());
  fake.fail_after = 5;
  MeterOptions opt;
  opt.sample_hz = 50;
  EnergyMeter meter(fake, opt);
  meter.begin("w");
  for (int i = 0; i < 100 && !meter.fault(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(meter.fault().has_value());
  WindowResult r = meter.wait(meter.end("w"));
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(meter.samples().size(), 5u);
  EXPECT_NEAR(r.joules, 100 * r.covered_s, 1e-6);
}

TEST(Meter, RejectsSampleRateOutsideRange) {
  FakeSensor fake = realtime_fake(0);
  MeterOptions opt;
  opt.sample_hz = 100;
  std::string e = error_of([&] { EnergyMeter m(fake, opt); });
  EXPECT_NE(e.find("sample_hz"), std::string::npos) << e;
}

TEST(Meter, SimulatorResultsAreDeterministic) {
  auto once = [] {
    SimulatedGpu gpu;
    SimSensor sensor(gpu);
    EnergyMeter meter(sensor);
    for (int step = 0; step < 5; ++step) {
      meter.begin("step");
      for (int i = 0; i < 100; ++i) {
        gpu.run(step % 2 ? kGemm : kStream);
        meter.poll();
      }
      meter.end("step");
    }
    return meter.flush();
  };
  auto a = once(), b = once();
  ASSERT_EQ(a.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].joules_counter, b[i].joules_counter);
    EXPECT_EQ(a[i].joules_integrated, b[i].joules_integrated);
    EXPECT_EQ(a[i].seconds, b[i].seconds);
  }
}

}  // namespace
}  // namespace wattmoe
