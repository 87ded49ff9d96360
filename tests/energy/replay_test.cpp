#include "energy/replay_sensor.h"

#include <gtest/gtest.h>

#include "energy/meter.h"
#include "energy/sim_gpu.h"
#include "energy/sim_sensor.h"
#include "energy/trace.h"
#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;
using energy_test::TempDir;
using energy_test::write_text;

std::vector<Sample> sim_samples() {
  SimGpuParams p;
  p.slowdown_temp_c = 45;
  p.thermal_tau_s = 0.2;
  SimulatedGpu gpu(p);
  gpu.set_memory_used(uint64_t(12345678901));
  std::vector<Sample> out;
  for (int i = 0; i < 200; ++i) {
    if (i % 7 == 0) gpu.idle(0.013 * i);
    else gpu.run(Work{1e12 * (i % 5), 3e8 * (i % 3), "w"});
    out.push_back(gpu.sample());
  }
  return out;
}

void expect_same(const std::vector<Sample>& a, const std::vector<Sample>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(a[i].same_as(b[i])) << "sample " << i;
}

TEST(Replay, RecordThenReplayIsExactJsonl) {
  TempDir dir;
  auto samples = sim_samples();
  {
    TraceWriter w(dir.file("t.jsonl"));
    for (const auto& s : samples) w.write(s);
  }
  ReplaySensor replay(dir.file("t.jsonl"));
  std::vector<Sample> back;
  while (!replay.done()) back.push_back(replay.read());
  expect_same(samples, back);
  EXPECT_TRUE(replay.capabilities().virtual_time);
  EXPECT_TRUE(replay.capabilities().power && replay.capabilities().clock_event_reasons);
  EXPECT_FALSE(replay.capabilities().mem_temp);  // the simulator does not model it, so the trace has none
  EXPECT_EQ(replay.now(), samples.back().time_s);
  std::string e = error_of([&] { replay.read(); });
  EXPECT_NE(e.find("trace ended"), std::string::npos) << e;
}

TEST(Replay, RecordThenReplayIsExactCsv) {
  TempDir dir;
  auto samples = sim_samples();
  {
    TraceWriter w(dir.file("t.csv"));
    for (const auto& s : samples) w.write(s);
  }
  expect_same(samples, read_trace(dir.file("t.csv")));
}

TEST(Replay, LooksUpSamplesByTime) {
  std::vector<Sample> v(3);
  for (int i = 0; i < 3; ++i) v[size_t(i)].time_s = double(i), v[size_t(i)].power_w = 100.0 * i;
  ReplaySensor r(v);
  EXPECT_EQ(r.at(-1).power_w, 0);
  EXPECT_EQ(r.at(1.5).power_w, 100);
  EXPECT_EQ(r.at(2).power_w, 200);
  EXPECT_EQ(r.at(9).power_w, 200);
}

TEST(Replay, MeterOverAReplayMatchesTheLiveMeter) {
  // Windows measured live on the simulator and on its recorded trace give the same energies.
  SimulatedGpu gpu;
  SimSensor live(gpu);
  std::vector<Sample> recorded;
  {
    EnergyMeter m(live);
    m.begin("w");
    for (int i = 0; i < 500; ++i) {
      gpu.run(Work{1e12, 1e8, "w"});
      m.poll();
    }
    m.end("w");
    recorded = m.samples();
    ReplaySensor replay(recorded);
    EnergyMeter r(replay);
    r.begin("w");
    for (size_t i = 3; i < recorded.size(); ++i) r.poll();
    r.end("w");
    const WindowResult a = m.flush()[0], b = r.flush()[0];
    EXPECT_EQ(a.seconds, b.seconds);
    EXPECT_NEAR(a.joules_integrated, b.joules_integrated, 1e-9 * a.joules_integrated);
    EXPECT_EQ(a.peak_w, b.peak_w);
  }
}

TEST(Replay, CorruptLinesNameFileLineAndField) {
  TempDir dir;
  const std::string good = R"({"time_s": 0.5, "power_w": 100})";
  struct Case {
    std::string line, expect;
  };
  const Case cases[] = {
      {R"({"time_s": 1, "power_w": "hot"})", "power_w: expected a number"},
      {R"({"time_s": 1, "powr_w": 3})", "unknown field \"powr_w\""},
      {R"({"power_w": 3})", "time_s: missing"},
      {R"({"time_s": 1, "clock_event_reasons": -4})", "clock_event_reasons: expected an integer >= 0"},
      {R"({"time_s": 0.1})", "time_s: 0.1 goes backwards"},
      {R"({"time_s": 1, )", "malformed JSON"},
      // Found by fuzz/trace_fuzz.cpp: a number beyond double escaped as nlohmann's out_of_range, naming no line.
      {R"({"time_s": 2e308})", "malformed JSON"},
      {R"([1, 2])", "expected a JSON object"},
  };
  for (const Case& c : cases) {
    write_text(dir.file("bad.jsonl"), good + "\n\n" + c.line + "\n");
    std::string e = error_of([&] { ReplaySensor r(dir.file("bad.jsonl")); });
    EXPECT_NE(e.find("bad.jsonl:3"), std::string::npos) << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << e;
  }
  write_text(dir.file("bad.csv"), "time_s,power_w\n1,100\n2,abc\n");
  std::string e = error_of([&] { read_trace(dir.file("bad.csv")); });
  EXPECT_NE(e.find("bad.csv:3: power_w: expected a finite number, got \"abc\""), std::string::npos) << e;
  write_text(dir.file("cols.csv"), "time_s,watts\n");
  e = error_of([&] { read_trace(dir.file("cols.csv")); });
  EXPECT_NE(e.find("cols.csv:1: unknown CSV column \"watts\""), std::string::npos) << e;
  write_text(dir.file("short.csv"), "time_s,power_w\n1\n");
  e = error_of([&] { read_trace(dir.file("short.csv")); });
  EXPECT_NE(e.find("short.csv:2: expected 2 comma-separated cells"), std::string::npos) << e;
  write_text(dir.file("empty.jsonl"), "\n");
  e = error_of([&] { ReplaySensor r(dir.file("empty.jsonl")); });
  EXPECT_NE(e.find("no samples"), std::string::npos) << e;
  e = error_of([&] { ReplaySensor r(dir.file("missing.jsonl")); });
  EXPECT_NE(e.find("missing.jsonl: cannot open"), std::string::npos) << e;
}

// A counter that wraps (RAPL) or resets between two samples used to make the telemetry summary's "energy counter
// +X J" negative (last - first). The total sums the steps forward; a step backwards is unwrapped when the wrap is
// known, else that interval is left out and counted, so the caller can say so.
TEST(Replay, CounterTotalSkipsWrapsAndResets) {
  CounterTotal t;
  for (double e : {1000.0, 1010.0, 1025.0, 5.0, 15.0}) t.add(e);
  EXPECT_DOUBLE_EQ(t.joules, 35.0);  // 10 + 15 + (wrap: left out) + 10
  EXPECT_EQ(t.backwards, 1);
  CounterTotal w;
  w.wrap_j = 1030;
  for (double e : {1000.0, 1010.0, 1025.0, 5.0, 15.0}) w.add(e);
  EXPECT_DOUBLE_EQ(w.joules, 10.0 + 15.0 + 10.0 + 10.0);  // 1025 -> 5 across a 1030 J wrap is +10
  EXPECT_EQ(w.backwards, 0);
  CounterTotal n;
  n.add(kNaN);
  n.add(7.0);
  n.add(kNaN);
  n.add(9.0);
  EXPECT_DOUBLE_EQ(n.joules, 2.0);
  EXPECT_EQ(n.samples, 2);
}

}  // namespace
}  // namespace wattmoe
