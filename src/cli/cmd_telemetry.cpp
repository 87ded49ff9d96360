// wattmoe telemetry: live power/energy/thermal samples from a sensor, one line each, optionally recorded as a
// trace (JSONL, or CSV for a .csv name) that `--replay` and ReplaySensor read back. The first line names the sensor
// (and says "simulated" when it is); the last sums up. With --json only the summary, as JSON (wattmoe.telemetry/1).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/output_flags.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "energy/nvml_sensor.h"
#include "energy/rapl_sensor.h"
#include "energy/replay_sensor.h"
#include "energy/sim_gpu.h"
#include "energy/sim_load.h"
#include "energy/sim_sensor.h"
#include "energy/trace.h"
#include "io/files.h"

namespace wattmoe::cli {

namespace {

struct TelemetryOptions {
  std::string sensor;  // empty: nvml if available, else sim
  int interval_ms = 100;
  double duration_s = 10;
  std::string record, replay, sim_params;
  bool fast = false;
  OutputFlags out;
};

std::string num(double v, const char* spec) {
  return std::isnan(v) ? std::string("-") : fmt::format(fmt::runtime(spec), v);
}

std::string sample_line(const Sample& s) {
  std::string line = fmt::format("{:>10} s  {:>7} W (avg {:>7} W)  {:>12} J  {:>5} C", num(s.time_s, "{:.3f}"),
                                 num(s.power_w, "{:.1f}"), num(s.power_avg_w, "{:.1f}"), num(s.energy_j, "{:.3f}"),
                                 num(s.gpu_temp_c, "{:.1f}"));
  if (!std::isnan(s.mem_temp_c)) line += fmt::format(" (mem {} C)", num(s.mem_temp_c, "{:.0f}"));
  line += fmt::format("  SM {:>4} MHz  MEM {:>4} MHz", num(s.sm_clock_mhz, "{:.0f}"), num(s.mem_clock_mhz, "{:.0f}"));
  if (s.clock_event_reasons) line += "  " + clock_event_reasons_str(*s.clock_event_reasons);
  return line;
}

void run_telemetry(const TelemetryOptions& o) {
  std::string kind = o.sensor;
  if (kind.empty() && !o.replay.empty()) kind = "replay";
  WATTMOE_REQUIRE(o.replay.empty() || kind == "replay", "--replay FILE goes with --sensor replay, not --sensor {}", kind);
  WATTMOE_REQUIRE(kind != "replay" || !o.replay.empty(), "--sensor replay needs --replay FILE");
  WATTMOE_REQUIRE(o.sim_params.empty() || kind.empty() || kind == "sim", "--sim-params goes with --sensor sim");
  refuse_output_is_input("--record", o.record, {{"--replay", o.replay}, {"--sim-params", o.sim_params}});

  std::unique_ptr<PowerSensor> sensor;
  std::unique_ptr<SimulatedGpu> gpu;
  std::unique_ptr<SyntheticLoad> load;
  if (kind.empty() || kind == "nvml") {
    try {
      sensor = std::make_unique<NvmlSensor>(0);
      kind = "nvml";
    } catch (const Error& e) {
      if (kind == "nvml") throw;
      log_info("telemetry: {}; using the simulated GPU instead", e.what());
      kind = "sim";
    }
  }
  if (kind == "sim") {
    gpu = std::make_unique<SimulatedGpu>(o.sim_params.empty() ? SimGpuParams{} : load_sim_params(o.sim_params));
    load = std::make_unique<SyntheticLoad>(*gpu);
    sensor = std::make_unique<SimSensor>(*gpu);
  } else if (kind == "rapl") {
    auto rapl = std::make_unique<RaplSensor>();
    WATTMOE_REQUIRE(rapl->available(), "--sensor rapl: {}", rapl->reason());
    sensor = std::move(rapl);
  } else if (kind == "replay") {
    sensor = std::make_unique<ReplaySensor>(o.replay);
  }
  WATTMOE_CHECK(sensor != nullptr);

  const bool lines = !o.out.json;
  if (lines)
    std::printf("telemetry: sensor %s (%s)%s\n", sensor->name().c_str(), capabilities_str(sensor->capabilities()).c_str(),
              kind == "sim" ? " -- simulated, running a synthetic idle/decode/prefill pattern" : "");
  std::optional<TraceWriter> writer;
  if (!o.record.empty()) writer.emplace(o.record);

  const double interval = o.interval_ms / 1000.0;
  double t_start = -1;
  size_t n = 0;
  double peak_w = kNaN;
  CounterTotal energy;  // steps forward only: a wrap or reset never makes the total negative
  energy.wrap_j = sensor->capabilities().counter_wrap_j;
  auto emit = [&](const Sample& s) {
    if (lines) {
      std::printf("%s\n", sample_line(s).c_str());
      std::fflush(stdout);
    }
    if (writer) writer->write(s);
    n++;
    if (!std::isnan(s.power_w)) peak_w = std::isnan(peak_w) ? s.power_w : std::max(peak_w, s.power_w);
    energy.add(s.energy_j, s.time_s);
  };

  if (kind == "replay") {
    auto& replay = static_cast<ReplaySensor&>(*sensor);
    while (!replay.done()) {
      Sample s = replay.read();
      if (t_start < 0) t_start = s.time_s;
      if (o.duration_s > 0 && s.time_s - t_start > o.duration_s) break;
      emit(s);
    }
  } else {
    const auto wall0 = std::chrono::steady_clock::now();
    t_start = sensor->now();
    for (int64_t i = 0;; ++i) {
      const double t = t_start + double(i) * interval;
      if (o.duration_s > 0 && t - t_start > o.duration_s + 1e-9) break;
      if (load) load->advance_to(t);
      if (!(load && o.fast)) std::this_thread::sleep_until(wall0 + std::chrono::duration<double>(double(i) * interval));
      emit(sensor->read());
    }
  }
  std::string t = fmt::format("telemetry: {} samples from {}", n, sensor->name());
  if (energy.samples > 1) t += fmt::format(", energy counter +{:.3f} J", energy.joules);
  if (energy.backwards > 0)
    t += fmt::format(" (the counter went backwards {} time{}, first at {:.3f} s: a wrap or reset; those intervals are "
                     "not counted)", energy.backwards, energy.backwards == 1 ? "" : "s", energy.first_backwards_s);
  if (!std::isnan(peak_w)) t += fmt::format(", peak {:.1f} W", peak_w);
  if (writer) t += fmt::format(", recorded to {}", writer->path());
  Json j{{"schema", "wattmoe.telemetry/1"}, {"sensor", sensor->name()}, {"kind", kind}, {"simulated", kind == "sim"},
         {"samples", n}, {"energy_j", energy.samples > 1 ? Json(energy.joules) : Json()},
         {"counter_backwards", energy.backwards}, {"peak_w", std::isnan(peak_w) ? Json() : Json(peak_w)}};
  if (writer) j["record"] = writer->path();
  std::fflush(stdout);
  emit_result(o.out, j, t + "\n");
}

}  // namespace

void add_telemetry_command(CLI::App& app) {
  auto o = std::make_shared<TelemetryOptions>();
  CLI::App* sub = app.add_subcommand("telemetry", "Show live power, energy, temperature and clock samples from a sensor");
  sub->add_option("--sensor", o->sensor, "nvml | sim | replay | rapl (default: nvml if available, else sim)")
      ->check(CLI::IsMember({"nvml", "sim", "replay", "rapl"}));
  sub->add_option("--interval-ms", o->interval_ms, "Milliseconds between samples (one NVML sample takes ~4 ms)")
      ->check(CLI::Range(10, 60000));
  sub->add_option("--duration", o->duration_s, "Seconds to run; 0 = until interrupted (default 10)")
      ->check(CLI::Range(0.0, 1e9));
  sub->add_option("--record", o->record, "Write the samples to FILE (JSONL; CSV if FILE ends in .csv)");
  sub->add_option("--replay", o->replay, "Play back a trace written by --record (implies --sensor replay)");
  sub->add_option("--sim-params", o->sim_params, "Simulated GPU parameters (JSON; see docs/energy.md)");
  sub->add_flag("--fast", o->fast, "Simulated sensor: don't wait in wall-clock time between samples");
  add_output_flags(sub, o->out);
  sub->callback([o] { run_telemetry(*o); });
}

}  // namespace wattmoe::cli
