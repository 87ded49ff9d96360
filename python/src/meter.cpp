// wattmoe._core.EnergyMeter: energy/meter.h's EnergyMeter over one sensor the meter owns — "nvml" (GPU `gpu`, the
// energy counter, sampled on the meter's thread), "rapl" (the CPU packages' energy counters) or "sim" (the simulated
// GPU of energy/sim_gpu.h in virtual time: it moves only when sim_run / sim_idle drive it, so windows are
// deterministic). Windows nest (the innermost ends first, as the meter requires); each end returns the window's
// result as a dict (energy/meter.h WindowResult; NaN fields are None).
#include <memory>
#include <string>

#include <nanobind/stl/string.h>

#include "bindings.h"
#include "core/error.h"
#include "energy/meter.h"
#include "energy/nvml_sensor.h"
#include "energy/rapl_sensor.h"
#include "energy/sim_gpu.h"
#include "energy/sim_params.h"
#include "energy/sim_sensor.h"

namespace wattmoe::py {

using namespace nb::literals;

namespace {

Json window_json(const WindowResult& r) {
  Json reasons = Json::object();
  for (size_t k = 0; k < kClockEventReasons.size(); ++k)
    reasons[std::string(kClockEventReasons[k].name)] = r.reason_seconds[k];
  return Json{{"name", r.name}, {"depth", r.depth}, {"begin_s", r.begin_s}, {"end_s", r.end_s},
              {"seconds", r.seconds}, {"joules", r.joules}, {"method", energy_method_name(r.method)},
              {"joules_counter", r.joules_counter}, {"joules_integrated", r.joules_integrated}, {"mean_w", r.mean_w},
              {"peak_w", r.peak_w}, {"max_temp_c", r.max_temp_c}, {"reason_seconds", reasons}, {"samples", r.samples},
              {"warning", r.warning_msg}, {"complete", r.complete}, {"covered_s", r.covered_s}, {"error", r.error}};
}

}  // namespace

class PyMeter {
 public:
  PyMeter(const std::string& sensor, unsigned gpu, const std::string& sim_params, double sample_hz) {
    WATTMOE_REQUIRE(sample_hz >= 10 && sample_hz <= 50, "sample_hz: expected 10 to 50 Hz, got {}", sample_hz);
    WATTMOE_REQUIRE(sim_params.empty() || sensor == "sim", "sim_params goes with sensor='sim', not '{}'", sensor);
    if (sensor == "sim") {
      gpu_ = std::make_unique<SimulatedGpu>(sim_params.empty() ? SimGpuParams{} : load_sim_params(sim_params));
      sensor_ = std::make_unique<SimSensor>(*gpu_);
    } else if (sensor == "nvml") {
      sensor_ = std::make_unique<NvmlSensor>(gpu);
    } else if (sensor == "rapl") {
      auto rapl = std::make_unique<RaplSensor>();
      WATTMOE_REQUIRE(rapl->available(), "sensor 'rapl': {}", rapl->reason());
      sensor_ = std::move(rapl);
    } else {
      fail("sensor '{}': expected nvml, rapl or sim", sensor);
    }
    MeterOptions o;
    o.sample_hz = sample_hz;
    meter_ = std::make_unique<EnergyMeter>(*sensor_, o);
  }
  ~PyMeter() { meter_.reset(); }  // the meter's sampler thread reads the sensor: it goes first

  std::string sensor() const { return sensor_->name(); }
  std::string capabilities() const { return capabilities_str(sensor_->capabilities()); }
  void begin_window(const std::string& name) { meter_->begin(name); }
  nb::object end_window(const std::string& name) {
    WindowResult r;
    {
      nb::gil_scoped_release nogil;
      r = meter_->wait(meter_->end(name));  // a real sensor's window is final one sample after its end
    }
    return to_python(window_json(r));
  }
  int depth() const { return meter_->depth(); }

  // The simulated GPU (sensor "sim" only): work of this many FLOPs and bytes (its duration in simulated seconds), or
  // idle time; and its exact energy so far (the meter reads the counter, which ticks like NVML's).
  double sim_run(double flops, double bytes) {
    WATTMOE_REQUIRE(std::isfinite(flops) && flops >= 0 && std::isfinite(bytes) && bytes >= 0,
                    "sim_run: flops and bytes must be finite and >= 0, got {} and {}", flops, bytes);
    return sim().run(Work{flops, bytes, "python"});
  }
  void sim_idle(double seconds) {
    WATTMOE_REQUIRE(std::isfinite(seconds) && seconds >= 0, "sim_idle: seconds must be finite and >= 0, got {}", seconds);
    sim().idle(seconds);
  }
  double sim_energy_j() { return sim().true_energy_j(); }

 private:
  SimulatedGpu& sim() {
    WATTMOE_REQUIRE(gpu_ != nullptr, "sim_run, sim_idle and sim_energy_j need sensor='sim' (this meter reads {})",
                    sensor_->name());
    return *gpu_;
  }
  std::unique_ptr<SimulatedGpu> gpu_;
  std::unique_ptr<PowerSensor> sensor_;
  std::unique_ptr<EnergyMeter> meter_;
};

void bind_meter(nb::module_& m) {
  nb::class_<PyMeter>(m, "EnergyMeter")
      .def(nb::init<const std::string&, unsigned, const std::string&, double>(), "sensor"_a, "gpu"_a = 0,
           "sim_params"_a = "", "sample_hz"_a = 20.0)
      .def_prop_ro("sensor", &PyMeter::sensor)
      .def_prop_ro("capabilities", &PyMeter::capabilities)
      .def_prop_ro("depth", &PyMeter::depth)
      .def("begin_window", &PyMeter::begin_window, "name"_a)
      .def("end_window", &PyMeter::end_window, "name"_a)
      .def("sim_run", &PyMeter::sim_run, "flops"_a, "bytes"_a)
      .def("sim_idle", &PyMeter::sim_idle, "seconds"_a)
      .def_prop_ro("sim_energy_j", &PyMeter::sim_energy_j);
}

}  // namespace wattmoe::py
