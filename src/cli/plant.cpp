#include "cli/plant.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "energy/sim_gpu.h"
#if WATTMOE_WITH_CUDA
#include "gpu/real_plant.h"
#include "ops/cuda/context.h"
#endif

namespace wattmoe::cli {

namespace {

class SimPlantAdapter : public Plant {
 public:
  SimPlantAdapter(const SimGpuParams& p, const SimStepShape& s) : gpu_(p), params_(p), shape_(s) {}
  const char* prefix() const override { return "sim"; }
  PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale) override {
    const SimStepResult r = run_sim_step(gpu_, shape_, counts, window_tokens, batch_scale);
    PlantStep p;
    p.seconds = r.seconds, p.busy_seconds = r.busy_seconds, p.joules = r.joules, p.tokens = r.tokens;
    p.overrun = r.busy_seconds > shape_.period_s;
    p.sample = gpu_.sample();
    return p;
  }
  Json describe() const override {
    return Json{{"label", "simulated GPU (not measured)"}, {"gpu", params_.name}, {"streams", shape_.streams},
                {"step_period_s", shape_.period_s}, {"expert_shape", {double(shape_.expert.hidden), double(shape_.expert.ffn)}}};
  }

 private:
  SimulatedGpu gpu_;
  SimGpuParams params_;
  SimStepShape shape_;
};

#if WATTMOE_WITH_CUDA
class CudaPlantAdapter : public Plant {
 public:
  explicit CudaPlantAdapter(const RealPlantConfig& c) : plant_(c) {
    log_info("run: real plant on {} ({}), {} weight sets ({:.1f} GiB), idle {:.1f} W over {:.1f} s",
             plant_.cuda_device(), plant_.sensor_name(), plant_.weight_sets(), plant_.weight_gib(), plant_.idle_w(),
             plant_.idle_seconds());
  }
  const char* prefix() const override { return "measured"; }
  PlantStep step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens, double batch_scale) override {
    last_ = plant_.step(counts, window_tokens, batch_scale);
    if (last_.overrun && overruns_++ == 0)
      log_warn("run: a step's GPU work took {:.3f} s, longer than the {:.3f} s period (overrun; lower --sim-streams "
               "or raise --step-period-s)", last_.busy_seconds, plant_.config().period_s);
    PlantStep p;
    p.seconds = last_.seconds, p.busy_seconds = last_.busy_seconds, p.joules = last_.joules, p.tokens = last_.tokens;
    p.overrun = last_.overrun;
    p.sample = last_.sample;
    return p;
  }
  Json describe() const override {
    const RealPlantConfig& c = plant_.config();
    return Json{{"label", "measured on a real GPU (NVML)"}, {"gpu", plant_.cuda_device()},
                {"sensor", plant_.sensor_name()}, {"idle_w", plant_.idle_w()}, {"idle_s", plant_.idle_seconds()},
                {"streams", c.streams}, {"step_period_s", c.period_s}, {"expert_shape", {c.hidden, c.ffn}},
                {"dense_gemm_out", c.dense_out}, {"weight_sets", plant_.weight_sets()},
                {"weight_gib", plant_.weight_gib()}};
  }
  Json step_extras(const PlantStep&) const override {
    return Json{{"measured_busy_s", last_.busy_seconds}, {"measured_overrun", last_.overrun},
                {"measured_method", last_.method}, {"measured_peak_w", last_.peak_w},
                {"measured_max_temp_c", last_.max_temp_c}, {"measured_integrated_j", last_.integrated_j},
                {"measured_integrated_s", last_.integrated_s},
                {"measured_reasons_seen", clock_event_reason_names(last_.reasons_seen)}};
  }

 private:
  RealPlant plant_;
  RealStep last_;
  int64_t overruns_ = 0;
};
#endif

}  // namespace

void check_plant(const std::string& name) {
  WATTMOE_REQUIRE(name == "sim" || name == "cuda", "--plant {}: expected sim or cuda", name);
  if (name == "sim") return;
#if WATTMOE_WITH_CUDA
  WATTMOE_REQUIRE(cuda::device_available(),
                  "--plant cuda: no CUDA device is visible (no GPU or driver here, or CUDA_VISIBLE_DEVICES hides it); "
                  "use --plant sim");
#else
  fail("--plant cuda: this wattmoe was built without CUDA (configure with -DWATTMOE_CUDA=ON and rebuild); use --plant "
       "sim");
#endif
}

double default_step_period(const std::string& name) { return name == "cuda" ? 1.0 : 0.02; }

std::unique_ptr<Plant> make_plant(const PlantOptions& o) {
  check_plant(o.name);
  if (o.name == "sim") return std::make_unique<SimPlantAdapter>(o.sim, o.shape);
#if WATTMOE_WITH_CUDA
  RealPlantConfig c;
  c.hidden = int(o.shape.expert.hidden), c.ffn = int(o.shape.expert.ffn);
  c.num_layers = o.num_layers, c.num_experts = o.num_experts, c.window_tokens = o.window_tokens;
  c.streams = o.shape.streams, c.period_s = o.shape.period_s, c.idle_s = o.idle_s, c.seed = o.seed;
  // The dense GEMM's rows: dense_params / H (q, k, v, o and router weights, as sim_step prices them).
  c.dense_out = int(std::llround(o.shape.dense_params / double(o.shape.expert.hidden)));
  c.dense_out = (c.dense_out + 7) / 8 * 8;
  return std::make_unique<CudaPlantAdapter>(c);
#else
  fail("--plant cuda: this wattmoe was built without CUDA");
#endif
}

}  // namespace wattmoe::cli
