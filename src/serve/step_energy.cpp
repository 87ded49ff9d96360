#include "serve/step_energy.h"

#include "core/error.h"
#include "energy/nvml_sensor.h"
#include "energy/sim_params.h"
#include "energy/sim_sensor.h"
#include "ops/quant.h"
#include "plant/sim_plant.h"

namespace wattmoe {

std::string resolve_serve_plant(const ServeEnergyOptions& o, const std::string& device) {
  WATTMOE_REQUIRE(o.plant == "auto" || o.plant == "sim" || o.plant == "model",
                  "--plant {}: expected sim (the simulated GPU), model (the GPU the model runs on, measured with "
                  "NVML) or auto", o.plant);
  const std::string p = o.plant == "auto" ? (device == "cuda" ? "model" : "sim") : o.plant;
  WATTMOE_REQUIRE(p != "model" || device == "cuda",
                  "--plant model measures the GPU the model runs on: it needs --device cuda (or use --plant sim)");
  check_plant(p);  // model: a CUDA build with a visible GPU
  return p;
}

void check_serve_energy_options(const ServeEnergyOptions& o) {
  WATTMOE_REQUIRE(o.sim_period_s >= 0 && std::isfinite(o.sim_period_s),
                  "--sim-period-s must be >= 0 seconds (0: each step's wall time), got {}", o.sim_period_s);
  WATTMOE_REQUIRE(o.bill_idle_s >= 0 && std::isfinite(o.bill_idle_s),
                  "--bill-idle-s must be >= 0 seconds (0: idle time is billed to nobody), got {}", o.bill_idle_s);
  WATTMOE_REQUIRE(std::isnan(o.control_period_s) || (o.control_period_s > 0 && std::isfinite(o.control_period_s)),
                  "--control-period-s must be > 0 seconds, got {}", o.control_period_s);
}

StepEnergy::StepEnergy(const ServeEnergyOptions& o, const std::string& plant, const ModelConfig& m,
                       const std::string& expert_shape, const std::string& expert_precision)
    : plant_(plant), sim_period_s_(o.sim_period_s) {
  check_serve_energy_options(o);
  MeterOptions mo;
  if (plant_ == "sim") {
    SimGpuParams p = o.sim_params.empty() ? SimGpuParams{} : load_sim_params(o.sim_params);
    if (std::isfinite(o.ambient_c)) p.ambient_c = o.ambient_c;
    shape_.streams = 1;  // a step is the real batch: no stand-in streams
    set_plant_expert_shape(shape_, expert_shape, m.num_experts,
                           ops::expert_precision_bytes(expert_precision));
    gpu_ = std::make_unique<SimulatedGpu>(p);
    sensor_ = std::make_unique<SimSensor>(*gpu_);
  } else {
    WATTMOE_CHECK(plant_ == "model", "unknown serve plant {}", plant_);
    sensor_ = std::make_unique<NvmlSensor>(0);
    mo.sample_hz = 50;  // a step's result is final one sample later: keep that short
  }
  meter_ = std::make_unique<EnergyMeter>(*sensor_, mo);
}

void StepEnergy::set_expert_precision(const std::string& p) {
  if (plant_ == "sim") shape_.expert.weight_bytes = ops::expert_precision_bytes(p);
}

StepEnergy::~StepEnergy() {
  if (meter_) meter_->stop();
}

void StepEnergy::begin() {
  WATTMOE_CHECK(!closed_, "StepEnergy: a step after close()");
  if (!outer_open_) meter_->begin("serve"), outer_open_ = true;
  wall_.reset();
  if (!carried_) meter_->begin("step");
  carried_ = false;
}

void StepEnergy::carry_on() {
  WATTMOE_CHECK(!closed_, "StepEnergy: carry_on after close()");
  if (outer_open_ && !carried_) meter_->begin("step"), carried_ = true;
}

void StepEnergy::drop_carried() {
  if (carried_) meter_->end("step"), carried_ = false;  // never taken: a later take() discards it
}

size_t StepEnergy::end(const std::vector<std::vector<int64_t>>& counts, double tokens) {
  return end_busy(gpu_ ? run_step_work(*gpu_, shape_, counts, tokens, 1.0) : 0);
}

size_t StepEnergy::end_adaptation(const std::vector<std::vector<int64_t>>& counts, double tokens, int forwards,
                                  int backwards) {
  return end_busy(gpu_ ? run_adaptation_work(*gpu_, shape_, counts, tokens, forwards, backwards) : 0);
}

size_t StepEnergy::end_busy(double busy) {
  if (gpu_) {  // the simulated GPU idles for the rest of the step's period
    const double period = sim_period_s_ > 0 ? sim_period_s_ : wall_.seconds();
    if (busy < period) gpu_->idle(period - busy);
  }
  return meter_->end("step");
}

bool StepEnergy::ready(size_t id) const { return meter_->ready(id); }

StepReading StepEnergy::take(size_t id) {
  const WindowResult w = meter_->wait(id);
  meter_->discard_through(id);
  StepReading r;
  r.joules = std::isfinite(w.joules) ? w.joules : 0.0;
  r.seconds = w.seconds;
  r.complete = w.complete && std::isfinite(w.joules);
  if (const std::optional<Sample> s = meter_->poll()) r.sample = *s;
  return r;
}

std::optional<Sample> StepEnergy::latest() { return meter_->poll(); }

std::optional<WindowResult> StepEnergy::close() {
  if (closed_) return std::nullopt;
  drop_carried();
  closed_ = true;
  if (!outer_open_) return std::nullopt;
  return meter_->wait(meter_->end("serve"));
}

Json StepEnergy::describe() const {
  Json j{{"plant", plant_}, {"source", source()}, {"sensor", sensor_->name()}};
  if (gpu_) {
    j["label"] = "simulated GPU (not measured)";
    j["gpu"] = gpu_->params().name;
    j["expert_shape"] = {shape_.expert.hidden, shape_.expert.ffn};
    j["sim_period_s"] = sim_period_s_;
  } else {
    j["label"] = "measured: NVML energy counter of GPU 0";
  }
  return j;
}

}  // namespace wattmoe
