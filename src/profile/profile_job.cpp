#include "profile/profile_job.h"

#include <fstream>
#include <functional>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "profile/blocks_cpu.h"
#include "profile/model_blocks.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "energy/meter.h"
#include "energy/nvml_sensor.h"
#include "energy/profile_fit.h"
#include "energy/profiler.h"
#include "energy/rapl_sensor.h"
#include "energy/sim_sensor.h"
#include "io/json.h"
#include "model/checkpoint.h"

#if WATTMOE_WITH_CUDA
#include "ops/cuda/kernel_trace.h"
#include "profile/blocks_cuda.h"
#endif

namespace wattmoe {

namespace {

constexpr int kDefaultMaxTokens = 4096;


std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return "cpu: " + line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "cpu";
}

Json hardware_json(const HardwareFit& f) {
  Json j = {{"static_w", f.hw.static_w},
            {"pj_per_flop", f.hw.pj_per_flop},
            {"pj_per_byte", f.hw.pj_per_byte},
            {"peak_flops", f.hw.peak_flops},
            {"bandwidth_bytes_per_s", f.hw.bandwidth_bytes_per_s},
            {"launch_s", f.hw.launch_s},
            {"points", f.points},
            {"max_rel_residual_j", f.max_rel_residual_j},
            {"rms_rel_residual_j", f.rms_rel_residual_j},
            {"max_rel_residual_s", f.max_rel_residual_s},
            {"rms_rel_residual_s", f.rms_rel_residual_s}};
  if (!f.note.empty()) j["note"] = f.note;
  return j;
}

HardwareFit fit_expert_hardware(const ProfileResult& r) {
  std::vector<HardwarePoint> pts;
  for (const BlockProfile& b : r.blocks)
    if (b.kind == "expert")
      for (const ProfilePoint& p : b.points) pts.push_back({p.work.flops, p.work.bytes, p.seconds, p.joules});
  return fit_hardware(pts, "--fit-hardware (expert measurements)");
}

void print_summary(const ProfileResult& r) {
  std::printf("%-22s %12s %12s %12s %12s %8s %8s\n", "block", "a_j", "b_j", "a_s", "b_s", "spread", "fit_err");
  for (const BlockProfile& b : r.blocks)
    std::printf("%-22s %12.5g %12.5g %12.5g %12.5g %7.2f%% %7.2f%%%s\n", b.name.c_str(), b.joules.line.a,
                b.joules.line.b, b.seconds.line.a, b.seconds.line.b, 100 * b.spread, 100 * b.joules.max_rel_residual,
                b.joules.note.empty() ? "" : ("  (" + b.joules.note + ")").c_str());
}

// Layer 0's blocks (the first expert only: the others launch the same kernels) at every token count.
void print_launches(const ProfileResult& r) {
  std::printf("\nkernels per call (launch records; occupancy is theoretical: resident warps / %d per SM)\n",
              r.sm->max_threads_per_sm / r.sm->warp_size);
  std::printf("%-22s %6s %7s %6s %8s %8s %5s %8s  %s\n", "block", "T", "kernels", "busy", "occ", "resident", "regs",
              "smem_KiB", "dominant kernel (share, CTAs/SM, limiter)");
  for (const BlockProfile& b : r.blocks) {
    if (b.layer > 0 || b.expert > 0) continue;
    for (const ProfilePoint& p : b.points) {
      if (!p.launches) continue;
      const LaunchSummary& l = *p.launches;
      std::printf("%-22s %6d %7.1f %5.0f%% %7.0f%% %7.0f%% %5d %8.1f  %s (%.0f%%, %d, %s)\n", b.name.c_str(),
                  p.tokens, l.kernels_per_call, 100 * l.kernel_seconds_per_call / p.seconds, 100 * l.theoretical,
                  100 * l.resident, l.max_regs_per_thread, double(l.max_smem_per_block) / 1024, l.dominant.name.c_str(),
                  100 * l.dominant_share, l.dominant_occupancy.blocks_per_sm, l.dominant_occupancy.limiter.c_str());
    }
  }
}

}  // namespace

std::vector<int> parse_token_counts(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    WATTMOE_REQUIRE(used == item.size() && !item.empty(), "--tokens-per-call {}: '{}' is not an integer", s, item);
    WATTMOE_REQUIRE(v >= 1, "--tokens-per-call {}: token count {} < 1 (each call needs at least one token)", s, v);
    WATTMOE_REQUIRE(v <= (1 << 20), "--tokens-per-call {}: token count {} is too large (at most {})", s, v, 1 << 20);
    for (int prev : out) WATTMOE_REQUIRE(prev != v, "--tokens-per-call {}: {} appears twice", s, v);
    out.push_back(int(v));
  }
  WATTMOE_REQUIRE(!out.empty(), "--tokens-per-call: expected a comma-separated list such as 1,8,64");
  return out;
}

Json run_profile_job(const ProfileJob& a) {
  Timer timer;
  // --- flags that need no file ---
  WATTMOE_REQUIRE(a.device == "cpu" || a.device == "cuda", "--device {}: expected cpu or cuda", a.device);
#if !WATTMOE_WITH_CUDA
  WATTMOE_REQUIRE(a.device != "cuda",
                  "--device cuda: this wattmoe was built without CUDA (configure with -DWATTMOE_CUDA=ON and rebuild)");
#endif
  const bool cuda = a.device == "cuda";
  WATTMOE_REQUIRE(a.sensor.empty() || a.sensor == "nvml" || a.sensor == "rapl" || a.sensor == "sim",
                  "--sensor {}: expected nvml, rapl or sim", a.sensor);
  WATTMOE_REQUIRE(!(cuda && a.sensor == "rapl"),
                  "--sensor rapl measures the CPU package: with --device cuda use nvml (or sim)");
  WATTMOE_REQUIRE(!(!cuda && a.sensor == "nvml"), "--sensor nvml measures a GPU: with --device cpu use rapl (or sim)");
  WATTMOE_REQUIRE(!a.out.empty(), "--out FILE is required (where the cost table goes)");
  WATTMOE_REQUIRE(!a.model.empty() || a.random_init, "expected --model DIR, or --random-init SEED with --config FILE");
  WATTMOE_REQUIRE(a.model.empty() || !a.random_init,
                  "--model and --random-init exclude each other (profile a checkpoint or a shape)");
  WATTMOE_REQUIRE(!a.random_init || !a.config.empty(), "--random-init needs --config FILE (the shape to profile)");
  WATTMOE_REQUIRE(a.config.empty() || a.random_init, "--config FILE goes with --random-init SEED (--model reads DIR/config.json)");
  WATTMOE_REQUIRE(a.check_layer.empty() || cuda,
                  "--check-layer runs the full MoE layer on the GPU: it needs --device cuda");
  WATTMOE_REQUIRE(a.check_layer.empty() || a.sensor != "sim",
                  "--check-layer measures the real MoE layer: it needs a real sensor (nvml), not sim");
  WATTMOE_REQUIRE(a.sim_params.empty() || a.sensor == "sim", "--sim-params FILE goes with --sensor sim");
  WATTMOE_REQUIRE(std::isfinite(a.min_window_s) && a.min_window_s > 0 && a.min_window_s <= 600,
                  "--min-window-s {}: expected seconds in (0, 600]", a.min_window_s);
  WATTMOE_REQUIRE(a.repeats >= 1 && a.repeats <= 1000, "--repeats {}: expected 1 to 1000", a.repeats);
  WATTMOE_REQUIRE(a.warmup >= 0 && a.warmup <= 1000000, "--warmup {}: expected 0 to 1000000 calls", a.warmup);
  WATTMOE_REQUIRE(std::isfinite(a.settle_s) && a.settle_s >= 0 && a.settle_s <= 60, "--settle-s {}: expected 0 to 60 s",
                  a.settle_s);
  WATTMOE_REQUIRE(a.graph_calls >= 1 && a.graph_calls <= 4096, "--cuda-graph {}: expected 1 to 4096 calls per graph",
                  a.graph_calls);
  WATTMOE_REQUIRE(a.idle_s < 0 || (std::isfinite(a.idle_s) && a.idle_s <= 600), "--idle-s {}: expected 0 to 600 s",
                  a.idle_s);
  WATTMOE_REQUIRE(a.max_tokens >= 0 && a.max_tokens <= (1 << 20), "--max-tokens-per-call {}: expected 1 to {}", a.max_tokens,
                  1 << 20);
  std::vector<int> counts;
  if (!a.token_counts.empty()) counts = parse_token_counts(a.token_counts);

  // --- the model's shape ---
  ModelConfig c;
  if (a.random_init) {
    c = parse_model_config(read_json_file(a.config), a.config);
    c.validate(a.config);
  } else {
    c = load_model_config(a.model);
  }
  const std::string what = a.random_init ? a.config : a.model;
  require_moe_layers(c, what);

  const int cap = a.max_tokens > 0 ? a.max_tokens : std::min(kDefaultMaxTokens, c.max_position_embeddings);
  if (counts.empty()) {
    for (int t : {1, 8, 64, 512, 4096})
      if (t <= cap) counts.push_back(t);
    if (counts.back() < cap && cap < 4096) counts.push_back(cap);
  }
  for (int t : counts)
    WATTMOE_REQUIRE(t <= cap,
                    "--tokens-per-call: {} exceeds the most tokens per call, {} ({}; raise it with --max-tokens-per-call)", t, cap,
                    a.max_tokens > 0 ? "--max-tokens-per-call" : "the model's max_position_embeddings");
  const int max_tokens = *std::max_element(counts.begin(), counts.end());

  // --- the sensor ---
  std::string kind = a.sensor;
  std::unique_ptr<PowerSensor> sensor;
  std::unique_ptr<SimulatedGpu> gpu;
  if (kind.empty() && !cuda) {
    auto rapl = std::make_unique<RaplSensor>();
    if (rapl->available()) {
      sensor = std::move(rapl);
      kind = "rapl";
    } else {
      log_info("profile: RAPL not readable ({}); using the simulated GPU (--sensor sim)", rapl->reason());
      kind = "sim";
    }
  }
  if (kind.empty()) kind = "nvml";
  if (kind == "sim") {
    gpu = std::make_unique<SimulatedGpu>(a.sim_params.empty() ? SimGpuParams{} : load_sim_params(a.sim_params));
    sensor = std::make_unique<SimSensor>(*gpu);
  } else if (kind == "rapl" && !sensor) {
    auto rapl = std::make_unique<RaplSensor>();
    WATTMOE_REQUIRE(rapl->available(), "--sensor rapl: {}", rapl->reason());
    sensor = std::move(rapl);
  } else if (kind == "nvml") {
    sensor = std::make_unique<NvmlSensor>(0);
  }
  WATTMOE_CHECK(sensor != nullptr);
  const bool simulated = kind == "sim";

  // --- the blocks (real execution only with a real sensor) ---
  const Precision prec = cuda ? Precision{2, 2} : Precision{4, 4};
  std::vector<float> host_params;
  if (!simulated && !(cuda && a.random_init)) {
    if (a.random_init)
      host_params = random_params(c, a.seed);
    else
      host_params = load_model<float>(a.model).params;
  }
  std::unique_ptr<BlockExecutor> exec;
  std::string device;
  if (simulated) {
    device = "simulated " + gpu->params().name + " (blocks' FLOPs and bytes, " + a.device + " precision)";
  } else if (cuda) {
#if WATTMOE_WITH_CUDA
    device = cuda_device_description();
    exec = std::make_unique<CudaBlockExecutor>(c, host_params.empty() ? nullptr : host_params.data(), a.seed,
                                               max_tokens, a.graph_calls);
#endif
  } else {
    device = cpu_model_name();
    exec = std::make_unique<CpuBlockExecutor>(c, host_params.data(), max_tokens, a.seed);
  }
  const std::vector<ProfileBlock> blocks = model_blocks(c, prec, exec.get());

  MeterOptions mo;
  mo.sample_hz = simulated ? 20 : 50;
#if WATTMOE_WITH_CUDA
  if (cuda && !simulated) mo.sync = [] { cuda_synchronize(); };
#endif
  EnergyMeter meter(*sensor, mo);
  ProfileOptions po;
  po.token_counts = counts;
  po.min_window_s = a.min_window_s;
  po.pilot_s = std::min(0.05, a.min_window_s);
  po.repeats = a.repeats;
  po.warmup = a.warmup;
  po.settle_s = a.settle_s;
  po.sync = mo.sync;
  std::string launch_note = simulated ? "simulated: no kernels run" : !cuda ? "cpu: no kernels" : "off (--no-launch-records)";
#if WATTMOE_WITH_CUDA
  std::unique_ptr<KernelTracer> tracer;
  if (cuda && !simulated && a.launch_records) {
    po.sm = cuda_sm_limits();
    try {
      tracer = std::make_unique<KernelTracer>();
      launch_note = "CUPTI";
    } catch (const Error& e) {
      launch_note = e.what();
      log_info("profile: {}; no launch records", launch_note);
    }
    // NVTX ranges "launch_records" > "<block>.T<T>" > the block's own, so an outside profiler can pick these runs.
    po.trace_launches = [&](const std::string& label, const std::function<void()>& run) {
      NvtxScope pass("launch_records"), point(label);
      if (tracer) {
        try {
          return tracer->trace(run);
        } catch (const Error& e) {  // e.g. CUPTI refuses while another profiler is attached
          launch_note = e.what();
          log_info("profile: {}; no more launch records", launch_note);
          tracer.reset();
        }
      }
      run();
      cuda_synchronize();
      return std::vector<KernelLaunch>{};
    };
  }
#endif
  Profiler prof(*sensor, meter, po, gpu.get());
  const double idle_s = a.idle_s >= 0 ? a.idle_s : (simulated ? 1.0 : 2.0);
  if (!a.quiet)
    std::printf("profile: %s, sensor %s (%s)%s; %zu blocks x %zu token counts, windows >= %.2f s x %d\n",
                device.c_str(), sensor->name().c_str(), capabilities_str(sensor->capabilities()).c_str(),
                simulated ? " -- SIMULATED" : "", blocks.size(), counts.size(), a.min_window_s, a.repeats);
  std::fflush(stdout);
  const ProfileResult r = prof.run(blocks, idle_s);

  Json j = profile_to_json(r, device, a.command);
  j["launch_records"] = {{"recorded", r.sm.has_value()}, {"how", launch_note}};
  HardwareFit hwfit;
  const bool fit = a.fit_hardware || !a.check_layer.empty();
  if (fit) {
    hwfit = fit_expert_hardware(r);
    j["hardware"] = hardware_json(hwfit);
  }
  write_json_file(a.out, j);
  if (!a.quiet) print_summary(r);
  if (!a.quiet && r.sm) print_launches(r);
  if (!a.quiet && !std::isnan(r.idle_w)) std::printf("idle power %.1f W (%s)\n", r.idle_w, r.method.c_str());
  if (fit && !a.quiet)
    std::printf("hardware fit: static %.1f W, %.3g pJ/FLOP, %.3g pJ/byte, peak %.3g FLOP/s, %.3g B/s, launch %.3g s; "
                "residuals J %.1f%% s %.1f%% (max)%s\n",
                hwfit.hw.static_w, hwfit.hw.pj_per_flop, hwfit.hw.pj_per_byte, hwfit.hw.peak_flops,
                hwfit.hw.bandwidth_bytes_per_s, hwfit.hw.launch_s, 100 * hwfit.max_rel_residual_j,
                100 * hwfit.max_rel_residual_s, hwfit.note.empty() ? "" : ("; " + hwfit.note).c_str());
  if (!a.quiet) std::printf("wrote %s (%.1f s)\n", a.out.c_str(), timer.seconds());

#if WATTMOE_WITH_CUDA
  if (!a.check_layer.empty()) {
    Json cl = check_layer_cuda(static_cast<CudaBlockExecutor&>(*exec), c, *sensor, meter, po, hwfit.hw, r);
    cl["device"] = device;
    cl["command"] = a.command;
    write_json_file(a.check_layer, cl);
    if (!a.quiet) std::printf("wrote %s (%.1f s)\n", a.check_layer.c_str(), timer.seconds());
  }
#endif
  return j;
}

}  // namespace wattmoe
