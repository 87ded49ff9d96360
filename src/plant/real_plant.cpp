#include "plant/real_plant.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "energy/meter.h"
#include "energy/nvml_sensor.h"
#include "ops/cuda/context.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe {

namespace {

struct ExpertWeights {
  DeviceBuffer gate, up, down;
};

void sleep_until(double t) {
  const double left = t - now_seconds();
  if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
}

// One step as measured: the PlantStep plus how it was measured (step_extras).
struct Measured {
  PlantStep step;
  bool complete = true;       // false: the sensor failed during the step
  std::string method;         // "counter_ticks", or the meter's method name
  double peak_w = kNaN, max_temp_c = kNaN;
  uint64_t reasons_seen = 0;  // clock-event reason bits that were active at any time during the step
  double integrated_j = kNaN, integrated_s = 0;  // cross-check: instant power integrated from work start to the end
};

}  // namespace

struct RealGpuPlant::Impl {
  RealPlantConfig c;
  std::string device, sensor_name;
  std::unique_ptr<NvmlSensor> sensor;
  std::unique_ptr<EnergyMeter> meter;
  std::vector<ExpertWeights> sets;  // weight sets, (l, e) uses sets[(l·E + e) % sets.size()]
  std::vector<DeviceBuffer> dense_w;  // [layer] [D, H]
  DeviceBuffer x, out, logits;
  std::unique_ptr<ExpertBlockCuda> expert;
  std::unique_ptr<RouterBlockCuda> dense;
  std::unique_ptr<CudaStream> stream;
  int max_tokens = 0;
  double idle_w = kNaN, idle_s = 0;
  Sample tick;  // the counter update that closed the last step (the next one's start)
  bool have_tick = false;
  Measured last;  // the last step
  int64_t overruns = 0;

  Sample wait_tick(double e_prev);
  Measured measure(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale);

  // Enqueues the step's work; returns the tokens of the dense part per layer.
  int64_t enqueue(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double scale) {
    const cudaStream_t s = stream->get();
    const int64_t T = std::clamp<int64_t>(std::llround(double(window_tokens) * scale), 0, max_tokens);
    const size_t E = size_t(c.num_experts);
    for (size_t l = 0; l < counts.size() && l < size_t(c.num_layers); ++l) {
      if (T > 0) dense->run(dense_w[l].get(), x.get(), logits.get(), int(T), s);
      for (size_t e = 0; e < counts[l].size() && e < E; ++e) {
        const int64_t n = std::clamp<int64_t>(std::llround(double(counts[l][e]) * scale), 0, max_tokens);
        if (n <= 0) continue;
        const ExpertWeights& w = sets[(l * E + e) % sets.size()];
        expert->run(w.gate.get(), w.up.get(), w.down.get(), x.get(), out.get(), int(n), s);
      }
    }
    return T;
  }
};

RealGpuPlant::RealGpuPlant(const RealPlantConfig& cfg) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.c = cfg;
  RealPlantConfig& c = m.c;
  WATTMOE_REQUIRE(c.num_layers > 0 && c.num_experts > 0 && c.window_tokens > 0,
                  "real plant: layers {}, experts {}, window tokens {}: expected > 0", c.num_layers, c.num_experts,
                  c.window_tokens);
  WATTMOE_REQUIRE(c.hidden > 0 && c.ffn > 0 && c.hidden % 8 == 0 && c.ffn % 8 == 0,
                  "real plant: expert shape {}x{}: expected multiples of 8", c.hidden, c.ffn);
  WATTMOE_REQUIRE(c.streams >= 1 && std::isfinite(c.streams) && c.period_s > 0 && std::isfinite(c.period_s),
                  "real plant: streams {} (≥ 1) and period {} s (> 0)", c.streams, c.period_s);
  if (c.dense_out <= 0) c.dense_out = 4096 + 1024 + 1024 + 4096 + c.num_experts;
  WATTMOE_REQUIRE(cuda::device_available(),
                  "--plant {}: no CUDA device is visible (no GPU or driver here, or CUDA_VISIBLE_DEVICES hides it); "
                  "use --plant sim", c.work ? "model" : "cuda");
  m.device = cuda_device_description();
  m.sensor = std::make_unique<NvmlSensor>(0);  // Error "NVML not available: ..." without a driver
  m.sensor_name = m.sensor->name();
  WATTMOE_REQUIRE(m.sensor->capabilities().energy || m.sensor->capabilities().power,
                  "--plant cuda: {} reports neither an energy counter nor instant power", m.sensor_name);
  MeterOptions mo;
  mo.sample_hz = c.sample_hz;
  mo.sync = [] { cuda_synchronize(); };
  m.meter = std::make_unique<EnergyMeter>(*m.sensor, mo);

  if (c.work) {  // the model's own kernels: nothing synthetic to allocate or warm
    cuda_synchronize();
    measure_idle(m);
    log_info("run: real plant (the model itself) on {} ({}), idle {:.1f} W over {:.1f} s", cuda_device(),
             sensor_name(), idle_w(), idle_seconds());
    return;
  }
  // Buffers. max_tokens: every token of a window at one expert, times the streams.
  const double max_t = std::ceil(double(c.window_tokens) * c.streams);
  WATTMOE_REQUIRE(max_t <= 1 << 20, "real plant: {} tokens per step (window × streams) is too many", max_t);
  // The expert kernels index [T, 2I] intermediates with 32-bit ints.
  WATTMOE_REQUIRE(max_t * 2 * double(c.ffn) < 2147483648.0,
                  "real plant: {} tokens per step (window {} × streams {}) overflow the expert kernels' 32-bit "
                  "indexing at I = {}: lower --sim-streams", max_t, c.window_tokens, c.streams, c.ffn);
  m.max_tokens = int(max_t);
  const size_t H = size_t(c.hidden), I = size_t(c.ffn), T = size_t(m.max_tokens), D = size_t(c.dense_out);
  m.stream = std::make_unique<CudaStream>();
  m.expert = std::make_unique<ExpertBlockCuda>(c.hidden, c.ffn, m.max_tokens);
  m.dense = std::make_unique<RouterBlockCuda>(c.hidden, c.dense_out, m.max_tokens);
  m.x = DeviceBuffer(T * H * 2), m.out = DeviceBuffer(T * H * 2), m.logits = DeviceBuffer(T * D * 2);
  for (int l = 0; l < c.num_layers; ++l) m.dense_w.emplace_back(D * H * 2);
  // One weight set per (layer, expert) when they fit with 2 GiB to spare; else as many as fit (at least one).
  const size_t set_bytes = 3 * I * H * 2, spare = size_t(2) << 30;
  size_t free_b = 0, total_b = 0;
  WATTMOE_REQUIRE(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess, "real plant: cudaMemGetInfo failed");
  const size_t want = size_t(c.num_layers) * size_t(c.num_experts);
  const size_t fit = free_b > spare ? (free_b - spare) / set_bytes : 0;
  const size_t n_sets = std::max<size_t>(1, std::min(want, fit));
  if (n_sets < want)
    log_warn("real plant: {} expert weight sets of {:.0f} MiB do not fit ({:.1f} GiB free); using {}, shared", want,
             double(set_bytes) / (1 << 20), double(free_b) / (1 << 30), n_sets);
  for (size_t i = 0; i < n_sets; ++i) {
    ExpertWeights w;
    w.gate = DeviceBuffer(I * H * 2), w.up = DeviceBuffer(I * H * 2), w.down = DeviceBuffer(H * I * 2);
    m.sets.push_back(std::move(w));
  }

  // Idle power: after allocation (the process's context is up, as it will be between steps), before any kernel.
  cuda_synchronize();
  measure_idle(m);

  // Random weights (uniform with std 1/√fan_in, so activations stay O(1)) and inputs.
  const double sH = 1 / std::sqrt(double(H)), sI = 1 / std::sqrt(double(I));
  uint64_t seed = c.seed * 1000003ull;
  for (auto& w : m.sets) {
    fill_uniform_bf16(w.gate.get(), I * H, sH, ++seed);
    fill_uniform_bf16(w.up.get(), I * H, sH, ++seed);
    fill_uniform_bf16(w.down.get(), H * I, sI, ++seed);
  }
  for (auto& d : m.dense_w) fill_uniform_bf16(d.get(), D * H, sH, ++seed);
  fill_uniform_bf16(m.x.get(), T * H, 1.0, ++seed);
  cuda_synchronize();
  // Warm-up (unmeasured): every expert at its top-2 share, so libraries settle before the first measured step.
  std::vector<std::vector<int64_t>> warm(size_t(c.num_layers),
                                         std::vector<int64_t>(size_t(c.num_experts),
                                                              std::max<int64_t>(1, 2 * c.window_tokens / c.num_experts)));
  m.enqueue(warm, c.window_tokens, c.streams);
  cuda_synchronize();
  log_info("run: real plant on {} ({}), {} weight sets ({:.1f} GiB), idle {:.1f} W over {:.1f} s", cuda_device(),
           sensor_name(), weight_sets(), weight_gib(), idle_w(), idle_seconds());
}

void RealGpuPlant::measure_idle(Impl& m) {
  if (m.c.idle_s <= 0) return;
  m.meter->begin("idle");
  std::this_thread::sleep_for(std::chrono::duration<double>(m.c.idle_s));
  const WindowResult r = m.meter->wait(m.meter->end("idle"));
  m.idle_w = r.seconds > 0 && std::isfinite(r.joules) ? r.joules / r.seconds : kNaN;
  m.idle_s = r.seconds;
}

RealGpuPlant::~RealGpuPlant() {
  if (impl_ && impl_->meter) impl_->meter->stop();
}

// The first NVML sample whose energy counter differs from `e_prev` (polling back to back, ~4 ms a read): the
// counter's update time to within one read. Error after 1 s without an update.
Sample RealGpuPlant::Impl::wait_tick(double e_prev) {
  const double t0 = now_seconds();
  for (;;) {
    Sample s = sensor->read();
    if (s.energy_j != e_prev) return s;
    WATTMOE_REQUIRE(now_seconds() - t0 < 1.0, "--plant cuda: the NVML energy counter did not change for 1 s");
  }
}

Measured RealGpuPlant::Impl::measure(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens,
                                     double batch_scale) {
  Impl& m = *this;
  WATTMOE_CHECK(batch_scale > 0 && batch_scale <= 1);
  const bool counter = m.sensor->capabilities().energy;
  // With the counter, windows run from one counter update to another and follow each other without a gap: the
  // step starts at the previous step's closing update (the first step waits for one), and closes at the first
  // update after its period. The counter then says exactly what the card drew in the window, whatever its lag
  // (as long as the lag is shorter than the idle end of the window), and the windows tile the run.
  if (counter && !m.have_tick) m.tick = m.wait_tick(m.sensor->read().energy_j), m.have_tick = true;
  Measured ms;
  PlantStep& st = ms.step;
  m.meter->begin("step");  // synchronises first: the GPU is idle here
  const double t0 = now_seconds(), ta = counter ? m.tick.time_s : t0;
  const double scale = m.c.streams * batch_scale;
  st.tokens = m.c.work ? m.c.work(batch_scale) : double(m.enqueue(counts, window_tokens, scale));
  cuda_synchronize();
  const double t1 = now_seconds();
  st.busy_seconds = t1 - t0;
  st.overrun = t1 > ta + m.c.period_s;
  sleep_until(ta + m.c.period_s);
  Sample b;
  if (counter) b = m.wait_tick(m.tick.energy_j);
  const WindowResult r = m.meter->wait(m.meter->end("step"));
  ms.complete = r.complete;
  ms.peak_w = r.peak_w, ms.max_temp_c = r.max_temp_c;
  ms.integrated_j = r.joules_integrated, ms.integrated_s = r.seconds;
  for (size_t k = 0; k < kClockEventReasons.size(); ++k)
    if (r.reason_seconds[k] > 0) ms.reasons_seen |= kClockEventReasons[k].bit;
  if (counter) {
    st.seconds = b.time_s - m.tick.time_s;
    st.joules = b.energy_j - m.tick.energy_j;
    ms.method = "counter_ticks";
    st.sample = b;
    m.tick = b;
  } else {
    st.seconds = r.seconds;
    st.joules = r.joules;
    ms.method = energy_method_name(r.method);
    if (auto s = m.meter->poll()) st.sample = *s;
  }
  WATTMOE_REQUIRE(std::isfinite(st.joules) && st.joules >= 0 && st.seconds > 0,
                  "--plant cuda: step energy not measured ({}): {}", ms.method,
                  r.error.empty() ? "no sensor reading covered the step" : r.error);
  return ms;
}

PlantStep RealGpuPlant::step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens,
                             double batch_scale) {
  Impl& m = *impl_;
  m.last = m.measure(counts, window_tokens, batch_scale);
  if (m.last.step.overrun && m.overruns++ == 0)
    log_warn("run: a step's GPU work took {:.3f} s, longer than the {:.3f} s period (overrun; lower --sim-streams "
             "or raise --step-period-s)", m.last.step.busy_seconds, m.c.period_s);
  return m.last.step;
}

Json RealGpuPlant::describe() const {
  const RealPlantConfig& c = impl_->c;
  if (c.work)
    return Json{{"label", "measured on a real GPU (NVML): the model itself"}, {"gpu", cuda_device()},
                {"sensor", sensor_name()}, {"idle_w", idle_w()}, {"idle_s", idle_seconds()}, {"streams", c.streams},
                {"step_period_s", c.period_s}};
  return Json{{"label", "measured on a real GPU (NVML)"}, {"gpu", cuda_device()}, {"sensor", sensor_name()},
              {"idle_w", idle_w()}, {"idle_s", idle_seconds()}, {"streams", c.streams}, {"step_period_s", c.period_s},
              {"expert_shape", {c.hidden, c.ffn}}, {"dense_gemm_out", c.dense_out}, {"weight_sets", weight_sets()},
              {"weight_gib", weight_gib()}};
}

Json RealGpuPlant::step_extras(const PlantStep&) const {
  const Measured& l = impl_->last;
  return Json{{"measured_busy_s", l.step.busy_seconds}, {"measured_overrun", l.step.overrun},
              {"measured_method", l.method}, {"measured_peak_w", l.peak_w}, {"measured_max_temp_c", l.max_temp_c},
              {"measured_integrated_j", l.integrated_j}, {"measured_integrated_s", l.integrated_s},
              {"measured_reasons_seen", clock_event_reason_names(l.reasons_seen)}};
}

double RealGpuPlant::idle_w() const { return impl_->idle_w; }
double RealGpuPlant::idle_seconds() const { return impl_->idle_s; }
std::string RealGpuPlant::cuda_device() const { return impl_->device; }
std::string RealGpuPlant::sensor_name() const { return impl_->sensor_name; }
int RealGpuPlant::weight_sets() const { return int(impl_->sets.size()); }
double RealGpuPlant::weight_gib() const {
  const double set = 3.0 * impl_->c.hidden * double(impl_->c.ffn) * 2;
  return (set * double(impl_->sets.size()) + double(impl_->c.num_layers) * impl_->c.dense_out * impl_->c.hidden * 2.0) /
         double(1 << 30);
}
const RealPlantConfig& RealGpuPlant::config() const { return impl_->c; }

}  // namespace wattmoe
