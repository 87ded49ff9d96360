// The profiler on the simulated GPU (virtual time, deterministic): it must recover the simulator's known linear
// costs, give bitwise the same table twice, write a table ProfiledCostModel loads, and fit the simulator's own
// hardware coefficients back from its measurements.
#include "energy/profiler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>

#include "energy/cost_analytic.h"
#include "energy/cost_table.h"
#include "energy/profile_fit.h"
#include "energy/sim_gpu.h"
#include "energy/sim_sensor.h"
#include "energy_test_util.h"

namespace wattmoe {
namespace {

using energy_test::error_of;
using energy_test::FakeSensor;
using energy_test::TempDir;

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A block whose work is affine in T and memory-bound at every T of the test, so that the simulator's time and
// energy are exactly linear: t = (B0 + c·T)/bw + launch, J = idle·t + pJ/FLOP·f·T + pJ/byte·(B0 + c·T).
struct LinearBlock {
  double f, B0, c;  // FLOPs per token, bytes per call, bytes per token
  Work work(int T) const { return {f * T, B0 + c * T, ""}; }
  LinearCost seconds(const SimGpuParams& p) const {
    return {B0 / p.bandwidth_bytes_per_s + p.launch_overhead_s, c / p.bandwidth_bytes_per_s};
  }
  LinearCost joules(const SimGpuParams& p) const {
    const LinearCost s = seconds(p);
    return {p.idle_w * s.a + 1e-12 * p.pj_per_byte * B0, p.idle_w * s.b + 1e-12 * (p.pj_per_flop * f + p.pj_per_byte * c)};
  }
};

ProfileBlock make_block(const std::string& name, const std::string& kind, int layer, int expert, LinearBlock lb) {
  ProfileBlock b;
  b.name = name;
  b.kind = kind;
  b.layer = layer;
  b.expert = expert;
  b.work = [lb](int T) { return lb.work(T); };
  return b;
}

// Layer 0: experts 0 and 1 (different sizes) and a router; all below the 700 W cap at every T used here.
const LinearBlock kBig{5e7, 3e8, 2e6}, kSmall{2e7, 1e8, 1e6}, kRouter{1e6, 1e6, 1e4};

std::vector<ProfileBlock> test_blocks() {
  return {make_block("layer0.expert0", "expert", 0, 0, kBig), make_block("layer0.expert1", "expert", 0, 1, kSmall),
          make_block("layer0.router", "router", 0, -1, kRouter)};
}

ProfileOptions quiet(std::vector<int> counts, double window) {
  ProfileOptions o;
  o.token_counts = std::move(counts);
  o.min_window_s = window;
  o.pilot_s = std::min(0.05, window);
  o.progress = false;
  return o;
}

// A real-time sensor (wall-clock samples) at a constant power.
void wall_clock_power(FakeSensor& f, double watts) {
  f.caps.power = true;
  f.make = [watts](size_t) {
    Sample s;
    s.time_s = now_seconds();
    s.power_w = watts;
    return s;
  };
}

ProfileResult profile_sim(const SimGpuParams& sp, const std::vector<ProfileBlock>& blocks, const ProfileOptions& o,
                          double idle_s = 0.5) {
  SimulatedGpu gpu(sp);
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  Profiler prof(sensor, meter, o, &gpu);
  return prof.run(blocks, idle_s);
}

TEST(Profiler, RecoversTheSimulatorsLinearCostsWithinTwoPercent) {
  SimGpuParams sp;
  const ProfileResult r = profile_sim(sp, test_blocks(), quiet({1, 8, 64, 512, 4096}, 0.5));
  ASSERT_EQ(r.blocks.size(), 3u);
  EXPECT_TRUE(r.simulated);
  EXPECT_EQ(r.method, "counter");
  EXPECT_NEAR(r.idle_w, sp.idle_w, 0.01 * sp.idle_w);
  const LinearBlock lbs[3] = {kBig, kSmall, kRouter};
  for (size_t i = 0; i < 3; ++i) {
    const BlockProfile& b = r.blocks[i];
    const LinearCost j = lbs[i].joules(sp), s = lbs[i].seconds(sp);
    EXPECT_NEAR(b.joules.line.a, j.a, 0.02 * j.a) << b.name;
    EXPECT_NEAR(b.joules.line.b, j.b, 0.02 * j.b) << b.name;
    EXPECT_NEAR(b.seconds.line.a, s.a, 0.02 * s.a) << b.name;
    EXPECT_NEAR(b.seconds.line.b, s.b, 0.02 * s.b) << b.name;
    EXPECT_TRUE(b.joules.note.empty()) << b.joules.note;
    EXPECT_LT(b.joules.max_rel_residual, 0.02) << b.name;
    ASSERT_EQ(b.points.size(), 5u);
    for (const ProfilePoint& p : b.points) {
      ASSERT_EQ(p.windows.size(), 3u);
      EXPECT_GE(p.windows[0].seconds, 0.5 * (1 - 1e-9)) << b.name << " T=" << p.tokens;  // windows reach min_window_s
      EXPECT_LT(p.spread_j, 0.01);
      // Counter and integrated power (the meter is polled inside simulated windows) agree.
      for (const ProfileWindow& w : p.windows)
        EXPECT_NEAR(w.joules_counter, w.joules_integrated, 0.01 * w.joules_integrated) << b.name << " T=" << p.tokens;
      // The per-call values are the simulator's exact ones.
      const double t_exact = j.at(p.tokens);
      EXPECT_NEAR(p.joules, t_exact, 0.02 * t_exact) << b.name << " T=" << p.tokens;
    }
  }
}

TEST(Profiler, WindowsAreNamedAndNestedPerBlockAndTokenCount) {
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  Profiler prof(sensor, meter, quiet({3, 7}, 0.3), &gpu);
  prof.profile_block(make_block("layer2.expert5", "expert", 2, 5, kSmall));
  const auto rs = meter.results();
  int inner = 0, outer = 0;
  for (const WindowResult& w : rs) {
    if (w.name == "layer2.expert5.T7") {
      ++outer;
      EXPECT_EQ(w.depth, 0);
    }
    if (w.name == "layer2.expert5.T7.r2") {
      ++inner;
      EXPECT_EQ(w.depth, 1);
    }
  }
  EXPECT_EQ(outer, 1);
  EXPECT_EQ(inner, 1);
}

TEST(Profiler, TwoRunsAreBitwiseIdentical) {
  const ProfileOptions o = quiet({1, 16, 300}, 0.25);
  const Json a = profile_to_json(profile_sim(SimGpuParams{}, test_blocks(), o), "sim", "test");
  const Json b = profile_to_json(profile_sim(SimGpuParams{}, test_blocks(), o), "sim", "test");
  EXPECT_EQ(a.dump(), b.dump());
}

TEST(Profiler, TableLoadsAsAProfiledCostModel) {
  const ProfileResult r = profile_sim(SimGpuParams{}, test_blocks(), quiet({1, 64, 1024}, 0.25));
  const Json j = profile_to_json(r, "sim-h100", "wattmoe profile --device cpu --sensor sim");
  TempDir dir;
  write_json_file(dir.file("costs.json"), j);
  const ProfiledCostModel m = ProfiledCostModel::load(dir.file("costs.json"));
  ASSERT_EQ(m.num_layers(), 1);
  ASSERT_EQ(m.num_experts(0), 2);
  EXPECT_EQ(m.device(), "sim-h100");
  for (int e = 0; e < 2; ++e) {
    const ExpertCost c = m.expert_cost(0, e, 10);
    EXPECT_DOUBLE_EQ(c.joules.a, r.blocks[size_t(e)].joules.line.a);
    EXPECT_DOUBLE_EQ(c.joules.b, r.blocks[size_t(e)].joules.line.b);
    EXPECT_DOUBLE_EQ(c.seconds.b, r.blocks[size_t(e)].seconds.line.b);
    EXPECT_DOUBLE_EQ(c.spread, r.blocks[size_t(e)].spread);
  }
  // The extension fields are there: the router block, token counts, per-T measurements, sensor and method.
  ASSERT_EQ(j["blocks"].size(), 1u);
  EXPECT_EQ(j["blocks"][0]["name"], "layer0.router");
  EXPECT_EQ(j["blocks"][0]["kind"], "router");
  EXPECT_EQ(j["token_counts"], Json({1, 64, 1024}));
  EXPECT_EQ(j["layers"][0]["experts"][1]["measurements"].size(), 3u);
  EXPECT_EQ(j["layers"][0]["experts"][1]["measurements"][2]["tokens"], 1024);
  EXPECT_EQ(j["sensor"], "sim:sim-h100");
  EXPECT_EQ(j["method"], "counter");
  EXPECT_TRUE(j["simulated"].get<bool>());
  // A typo in an extension-era key is still caught by the loader.
  Json bad = j;
  bad["layers"][0]["experts"][0]["measurement"] = 1;
  write_json_file(dir.file("bad.json"), bad);
  const std::string e = error_of([&] { ProfiledCostModel::load(dir.file("bad.json")); });
  EXPECT_TRUE(has(e, "measurement")) << e;
}

TEST(Profiler, FitHardwareRecoversTheSimulatorsCoefficients) {
  SimGpuParams sp;
  sp.power_limit_w = 1e5;  // unthrottled: the analytic model assumes the max clock
  // Mixtral-shaped experts (bf16): memory-bound at T <= 64, compute-bound at T >= 512.
  const AnalyticCostModel shapes = AnalyticCostModel::uniform(1, 2, ExpertShape{4096, 14336, 2, 2, 3}, HardwareCoeffs{});
  std::vector<ProfileBlock> blocks;
  for (int e = 0; e < 2; ++e) {
    ProfileBlock b;
    b.name = "layer0.expert" + std::to_string(e);
    b.kind = "expert";
    b.layer = 0;
    b.expert = e;
    b.work = [&shapes, e](int T) { return Work{shapes.flops(0, e, T), shapes.bytes(0, e, T), ""}; };
    blocks.push_back(b);
  }
  const ProfileResult r = profile_sim(sp, blocks, quiet({1, 8, 64, 512, 4096}, 0.3), 0);
  std::vector<HardwarePoint> pts;
  for (const BlockProfile& b : r.blocks)
    for (const ProfilePoint& p : b.points) pts.push_back({p.work.flops, p.work.bytes, p.seconds, p.joules});
  const HardwareFit f = fit_hardware(pts, "sim experts");
  EXPECT_NEAR(f.hw.pj_per_flop, sp.pj_per_flop, 0.05 * sp.pj_per_flop);
  EXPECT_NEAR(f.hw.pj_per_byte, sp.pj_per_byte, 0.05 * sp.pj_per_byte);
  EXPECT_NEAR(f.hw.static_w, sp.idle_w, 0.05 * sp.idle_w);
  EXPECT_NEAR(f.hw.peak_flops, sp.peak_flops, 0.05 * sp.peak_flops);
  EXPECT_NEAR(f.hw.bandwidth_bytes_per_s, sp.bandwidth_bytes_per_s, 0.05 * sp.bandwidth_bytes_per_s);
  EXPECT_LT(f.max_rel_residual_j, 0.02);
  EXPECT_LT(f.max_rel_residual_s, 0.02);
  EXPECT_TRUE(f.note.empty()) << f.note;
  // The analytic model with the fitted coefficients predicts the measured energy of every point.
  for (const HardwarePoint& p : pts)
    EXPECT_NEAR(roofline_joules(f.hw, p.flops, p.bytes), p.joules, 0.03 * p.joules);
}

TEST(Profiler, CallsPerRunGiveResultsPerCall) {
  // A block whose run makes 4 calls (a CUDA graph of 4, say) costs per call what a plain one does.
  ProfileBlock one = make_block("layer0.expert0", "expert", 0, 0, kBig), four = one;
  four.calls_per_run = 4;
  const ProfileOptions o = quiet({1, 512}, 0.3);
  const ProfileResult a = profile_sim(SimGpuParams{}, {one}, o, 0), b = profile_sim(SimGpuParams{}, {four}, o, 0);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(b.blocks[0].points[i].joules, a.blocks[0].points[i].joules, 0.005 * a.blocks[0].points[i].joules);
    EXPECT_NEAR(b.blocks[0].points[i].seconds, a.blocks[0].points[i].seconds, 1e-9 * a.blocks[0].points[i].seconds);
    EXPECT_EQ(b.blocks[0].points[i].windows[0].calls % 4, 0);
  }
  four.calls_per_run = 0;
  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  Profiler prof(sensor, meter, o, &gpu);
  const std::string e = error_of([&] { prof.run({four}); });
  EXPECT_TRUE(has(e, "calls per run 0")) << e;
}

// Launch records: a fake tracer stands in for CUPTI (the gpu test runs the real one). Every (block, T) is traced once,
// after all energy windows, under its label; the summary lands in each measurement and the table still loads.
// A window that reads no energy (here: a sensor at 0 W; on an H100, NVML's counter estimate over 0.1 s windows read
// -1.1 J) is refused, and the error says what to change.
TEST(Profiler, AWindowWithoutEnergyIsAnErrorThatSaysHowToFixIt) {
  FakeSensor dark;
  wall_clock_power(dark, 0);
  EnergyMeter meter(dark);
  ProfileOptions o = quiet({1}, 0.02);
  o.pilot_s = 0.005;
  o.settle_s = 0;
  o.repeats = 1;
  ProfileBlock b;
  b.name = "layer0.expert0";
  b.kind = "expert";
  b.layer = 0;
  b.expert = 0;
  b.run = [](int) { std::this_thread::sleep_for(std::chrono::microseconds(200)); };
  Profiler prof(dark, meter, o);
  const std::string e = error_of([&] { prof.run({b}); });
  EXPECT_TRUE(has(e, "expected energy > 0") && has(e, "make them longer, min_window_s 0.02 now")) << e;
}

TEST(Profiler, LaunchRecordsAreTakenAfterTheWindowsAndSummarisedPerCall) {
  FakeSensor fake;
  wall_clock_power(fake, 100);
  EnergyMeter meter(fake);
  ProfileOptions o = quiet({1, 8}, 0.02);
  o.pilot_s = 0.005;
  o.settle_s = 0;
  o.repeats = 1;
  o.warmup = 0;
  int runs = 0;
  auto block = [&](const std::string& name, const std::string& kind, int expert) {
    ProfileBlock b;
    b.name = name;
    b.kind = kind;
    b.layer = 0;
    b.expert = expert;
    b.calls_per_run = 2;
    b.run = [&runs](int) {
      ++runs;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    };
    return b;
  };
  const std::vector<ProfileBlock> blocks = {block("layer0.expert0", "expert", 0), block("layer0.router", "router", -1)};
  KernelLaunch gemm{.name = std::string("gemm"), .grid = 264, .threads = 256, .regs_per_thread = 32, .seconds = 3e-6};
  KernelLaunch route{.name = std::string("route"), .grid = 1, .threads = 128, .regs_per_thread = 168, .seconds = 1e-6};
  std::vector<std::string> labels;
  int runs_before_first_trace = -1;
  o.sm = energy_test::h100_limits();
  o.trace_launches = [&](const std::string& label, const std::function<void()>& run) {
    if (labels.empty()) runs_before_first_trace = runs;
    labels.push_back(label);
    run();
    // The router launches nothing the tracer sees at T = 8: that point has no summary.
    if (label == "layer0.router.T8") return std::vector<KernelLaunch>{};
    return std::vector<KernelLaunch>{gemm, route, gemm, route};
  };
  Profiler prof(fake, meter, o);
  const ProfileResult r = prof.run(blocks);
  EXPECT_EQ(labels, (std::vector<std::string>{"layer0.expert0.T1", "layer0.expert0.T8", "layer0.router.T1",
                                              "layer0.router.T8"}));
  EXPECT_EQ(runs_before_first_trace, runs - 4);  // every window came first
  ASSERT_TRUE(r.blocks[0].points[1].launches.has_value());
  const LaunchSummary& l = *r.blocks[0].points[1].launches;
  const LaunchSummary want = summarise_launches(o.sm, {gemm, route, gemm, route}, 2);
  EXPECT_DOUBLE_EQ(l.kernels_per_call, 2);
  EXPECT_DOUBLE_EQ(l.theoretical, want.theoretical);
  EXPECT_EQ(l.dominant.name, "gemm");
  EXPECT_FALSE(r.blocks[1].points[1].launches.has_value());
  ASSERT_TRUE(r.sm.has_value());

  const Json j = profile_to_json(r, "fake", "");
  const Json& m = j["layers"][0]["experts"][0]["measurements"][0]["launches"];
  EXPECT_DOUBLE_EQ(m["kernels_per_call"].get<double>(), 2);
  EXPECT_DOUBLE_EQ(m["kernel_s_per_call"].get<double>(), 4e-6);
  EXPECT_EQ(m["dominant"]["name"], "gemm");
  EXPECT_EQ(m["dominant"]["blocks_per_sm"], 8);
  EXPECT_EQ(m["dominant"]["limiter"], "warps");
  EXPECT_DOUBLE_EQ(m["dominant"]["waves"].get<double>(), 264.0 / (8 * 132));
  EXPECT_FALSE(j["blocks"][0]["measurements"][1].contains("launches"));
  EXPECT_EQ(j["sm_limits"]["device"], "H100 (test limits)");
  TempDir dir;
  write_json_file(dir.file("costs.json"), j);
  EXPECT_EQ(ProfiledCostModel::load(dir.file("costs.json")).num_experts(0), 1);

  // Launch records need the device's limits; the simulated GPU runs no kernels, so it takes none.
  ProfileOptions no_limits = o;
  no_limits.sm = SmLimits{};
  std::string e = error_of([&] { Profiler(fake, meter, no_limits); });
  EXPECT_TRUE(has(e, "sm_count 0")) << e;
  labels.clear();
  const ProfileResult sim = profile_sim(SimGpuParams{}, test_blocks(), o, 0);
  EXPECT_TRUE(labels.empty());
  EXPECT_FALSE(sim.sm.has_value());
}

TEST(ProfileFit, RooflineTimeIsALowerEnvelope) {
  // An exact roofline (peak 1e12 FLOP/s, 1e10 B/s, launch 1e-5 s), except that two middle points run 2x slower (a
  // kernel that cannot fill the device): the fit must bound every point from below and stay close to the others.
  HardwareCoeffs truth;
  truth.peak_flops = 1e12, truth.bandwidth_bytes_per_s = 1e10, truth.launch_s = 1e-5;
  std::vector<HardwarePoint> pts;
  for (double T : {1.0, 8.0, 64.0, 512.0, 4096.0}) {
    const double flops = 1e8 * T, bytes = 1e7 + 1e3 * T;
    double t = roofline_seconds(truth, flops, bytes);
    if (T == 8 || T == 64) t *= 2;
    pts.push_back({flops, bytes, t, 100 * t + 1e-12 * (flops + 50 * bytes)});
  }
  const HardwareFit f = fit_hardware(pts, "envelope");
  for (const HardwarePoint& p : pts) EXPECT_LE(roofline_seconds(f.hw, p.flops, p.bytes), p.seconds * (1 + 1e-9));
  for (size_t i : {size_t(0), size_t(4)})
    EXPECT_NEAR(roofline_seconds(f.hw, pts[i].flops, pts[i].bytes), pts[i].seconds, 0.02 * pts[i].seconds) << i;
  EXPECT_LT(f.hw.launch_s, pts[0].seconds);
}

TEST(ProfileFit, RelativeLeastSquaresWeighsEveryTokenCount) {
  // y = 10 + 0.01·x exactly: recovered, residuals 0.
  LinearFit f = fit_linear_relative({1, 10, 1000, 100000}, {10.01, 10.1, 20, 1010}, "exact");
  EXPECT_NEAR(f.line.a, 10, 1e-9);
  EXPECT_NEAR(f.line.b, 0.01, 1e-12);
  EXPECT_LT(f.max_rel_residual, 1e-12);
  // A 10% error at the largest x must not wreck the small-x end (plain least squares would move a by ~100%).
  f = fit_linear_relative({1, 10, 1000, 100000}, {10.01, 10.1, 20, 1111}, "noisy");
  EXPECT_NEAR(f.line.at(1), 10.01, 0.1 * 10.01);
  // A fitted a < 0 is clamped with a note; b < 0 likewise.
  f = fit_linear_relative({1, 2, 3}, {1, 3, 5}, "neg a");
  EXPECT_EQ(f.line.a, 0);
  EXPECT_GT(f.line.b, 0);
  EXPECT_TRUE(has(f.note, "a < 0")) << f.note;
  f = fit_linear_relative({1, 2, 3}, {5, 4, 3}, "neg b");
  EXPECT_EQ(f.line.b, 0);
  EXPECT_TRUE(has(f.note, "b < 0")) << f.note;
  // One token count cannot split a from b.
  f = fit_linear_relative({8}, {4}, "one");
  EXPECT_EQ(f.line.a, 0);
  EXPECT_DOUBLE_EQ(f.line.b, 0.5);
  EXPECT_FALSE(f.note.empty());
  EXPECT_DOUBLE_EQ(median_of({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median_of({4, 1, 2, 3}), 2.5);
  EXPECT_NEAR(relative_spread({1, 1, 1}), 0, 1e-15);
  EXPECT_GT(relative_spread({1, 2}), 0.4);
}

TEST(ProfileFit, BadInputNamesTheProblem) {
  std::string e = error_of([] { fit_linear_relative({1, 2}, {1}, "layer0.expert1: joules"); });
  EXPECT_TRUE(has(e, "layer0.expert1: joules") && has(e, "2 token counts but 1")) << e;
  e = error_of([] { fit_linear_relative({}, {}, "x"); });
  EXPECT_TRUE(has(e, "nothing to fit")) << e;
  e = error_of([] { fit_linear_relative({1, 2}, {1, 0}, "x"); });
  EXPECT_TRUE(has(e, "expected a finite number > 0")) << e;
  e = error_of([] { fit_hardware({{1, 1, 1, 1}, {2, 2, 2, 2}}, "hw"); });
  EXPECT_TRUE(has(e, "need at least 3")) << e;
  e = error_of([] { fit_hardware({{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 0, 3}}, "hw"); });
  EXPECT_TRUE(has(e, "point 2")) << e;
}

TEST(Profiler, BadOptionsAndBlocksGiveClearErrors) {
  auto opt_error = [](auto change) {
    ProfileOptions o = quiet({1, 8}, 0.2);
    change(o);
    return error_of([&] { validate(o); });
  };
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.token_counts = {1, 0}; }), "token count 0: expected >= 1"));
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.token_counts = {}; }), "at least one"));
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.token_counts = {4, 4}; }), "each must appear once"));
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.min_window_s = -1; }), "min window -1"));
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.repeats = 0; }), "repeats 0"));
  EXPECT_TRUE(has(opt_error([](ProfileOptions& o) { o.warmup = -1; }), "warmup -1"));

  SimulatedGpu gpu;
  SimSensor sensor(gpu);
  EnergyMeter meter(sensor);
  std::string e = error_of([&] { Profiler(sensor, meter, quiet({1}, 0.2)); });
  EXPECT_TRUE(has(e, "virtual time") && has(e, "simulated GPU")) << e;
  Profiler prof(sensor, meter, quiet({1}, 0.2), &gpu);
  ProfileBlock no_work;
  no_work.name = "layer0.expert0";
  e = error_of([&] { prof.run({no_work}); });
  EXPECT_TRUE(has(e, "layer0.expert0 has no work")) << e;
  const ProfileBlock b = make_block("layer0.expert0", "expert", 0, 0, kSmall);
  e = error_of([&] { prof.run({b, b}); });
  EXPECT_TRUE(has(e, "appears twice")) << e;
  e = error_of([&] { prof.run({b}, -1); });
  EXPECT_TRUE(has(e, "idle seconds -1")) << e;

  // A real (not virtual-time) sensor does not take a simulated GPU.
  FakeSensor fake;
  wall_clock_power(fake, 100);
  {
    EnergyMeter m2(fake);
    e = error_of([&] { Profiler(fake, m2, quiet({1}, 0.2), &gpu); });
    EXPECT_TRUE(has(e, "real device")) << e;
  }

  // Tables need experts 0..E-1 of layers 0..L-1.
  ProfileResult r = profile_sim(SimGpuParams{}, {make_block("layer1.expert0", "expert", 1, 0, kSmall)}, quiet({1}, 0.2), 0);
  e = error_of([&] { profile_to_json(r, "sim", ""); });
  EXPECT_TRUE(has(e, "skip layer 0")) << e;
  r = profile_sim(SimGpuParams{}, {make_block("layer0.router", "router", 0, -1, kRouter)}, quiet({1}, 0.2), 0);
  e = error_of([&] { profile_to_json(r, "sim", ""); });
  EXPECT_TRUE(has(e, "no expert blocks")) << e;
}

}  // namespace
}  // namespace wattmoe
