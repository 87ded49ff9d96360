// StepEnergy: the energy of each scheduler step of the server, as one EnergyMeter window per step (energy/meter.h)
// over a sensor:
//   sim    the simulated GPU (energy/sim_gpu.h through SimSensor), fed each step's routed work exactly as
//          `wattmoe run --plant sim` prices a window (plant/sim_plant.h run_step_work: the dense part for the step's
//          tokens, every activated expert once over its (token, expert) pairs, Mixtral-shaped unless --expert-shape),
//          then idling for the rest of the step: its wall time, or sim_period_s when that is set (deterministic).
//          Virtual time moves only inside steps. Every value is labelled "simulated".
//   model  the real GPU the model runs on, read by NVML (energy/nvml_sensor.h) on the meter's sampler thread: the
//          energy counter over the step's wall time — "measured". Needs --device cuda. A step's result is final one
//          sample later (ready/take); the scheduler bills requests then.
// The steps' windows are contiguous (carry_on) while requests are in flight, and for up to bill_idle_s after the last
// one left: a step's window starts where the previous one ended, so the scheduler's own work between steps
// (admission, sampling, streaming) and the board's energy while clients turn around between requests are metered and
// billed with the next step; only longer idle time (a carried window that no step followed in time: drop_carried) is
// billed to nobody. The simulated GPU's time moves only inside steps, so there the carry changes nothing. The meter
// also keeps one outer window from the first step's begin (close() ends it): the meter's own energy over all of it,
// which the requests' shares and the adaptation steps add up to, up to that idle time.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/timer.h"
#include "energy/meter.h"
#include "energy/sensor.h"
#include "energy/sim_gpu.h"
#include "io/json.h"
#include "model/config.h"
#include "plant/plant.h"

namespace wattmoe {

struct ServeEnergyOptions {
  std::string plant = "auto";    // sim | model | auto (model with --device cuda, else sim)
  std::string sim_params;        // simulated GPU parameters (JSON file); empty: the defaults
  double ambient_c = NAN;        // simulated ambient temperature; NaN: the sim parameters'
  double sim_period_s = 0;       // > 0: each simulated step lasts at least this long; 0: the step's wall time
  double control_period_s = NAN; // the controller sees this much step time per update; NaN: 0.02 s sim, 1 s model
  double bill_idle_s = 1.0;      // ≥ 0: a gap with no request in flight up to this long is billed with the next step
};

// "sim" or "model" for these options and that device (auto → model on cuda, else sim); Error for another plant,
// and for model without --device cuda or a visible GPU.
std::string resolve_serve_plant(const ServeEnergyOptions& o, const std::string& device);
// Error naming the option for an out-of-range value (checked before any work).
void check_serve_energy_options(const ServeEnergyOptions& o);

struct StepReading {
  double joules = 0, seconds = 0;  // the step's window: energy (meter's method, normally the counter) and duration
  Sample sample;                   // the sensor at the step's end (temperature, clocks, clock-event reasons)
  bool complete = true;            // false when the sensor failed during the step
};

// Whether the next step's window stays open (StepEnergy::carry_on) after a turn of the server's loop: always while
// requests are in flight; with none, until bill_idle_s after the last step (or adaptation step) ended; after that not
// again until the next step. The loop waits for work no longer than deadline().
class IdleCarry {
 public:
  using Clock = std::chrono::steady_clock;
  explicit IdleCarry(double bill_idle_s) : idle_(std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(bill_idle_s))) {}
  // stepped: a step ended in this turn; in_flight: requests are running.
  bool keep(bool stepped, bool in_flight, Clock::time_point now) {
    if (stepped) deadline_.reset(), expired_ = false;
    if (in_flight) return true;
    if (!deadline_ && !expired_) deadline_ = now + idle_;
    if (deadline_ && now < *deadline_) return true;
    deadline_.reset(), expired_ = true;
    return false;
  }
  std::optional<Clock::time_point> deadline() const { return deadline_; }  // unset: no idle window is open

 private:
  Clock::duration idle_;
  std::optional<Clock::time_point> deadline_;
  bool expired_ = false;  // the idle window ended and no step has run since
};

class StepEnergy {
 public:
  // plant: "sim" or "model" (resolve_serve_plant); expert_shape: --expert-shape (sim only; empty: Mixtral-shaped);
  // expert_precision: the runner's --expert-precision, the simulated experts' weight bytes.
  StepEnergy(const ServeEnergyOptions& o, const std::string& plant, const ModelConfig& m,
             const std::string& expert_shape, const std::string& expert_precision = "bf16");
  ~StepEnergy();
  const std::string& plant() const { return plant_; }
  const char* source() const { return plant_ == "sim" ? "simulated" : "measured"; }

  void begin();  // a step starts (keeping a carried window: its time since the previous step's end counts)
  // Opens the next step's window at once; begin() keeps it. The server calls it when requests are still in flight
  // after a step. drop_carried() ends such a window when no step follows (its energy is billed to nobody).
  void carry_on();
  void drop_carried();
  size_t end(const std::vector<std::vector<int64_t>>& counts, double tokens);  // its routed work; the window id
  // Ends a step that was test-time adaptation on one window (counts, tokens: its scoring forward's routed work):
  // forwards and backwards priced as plant/sim_plant.h run_adaptation_work; measured plants measure it.
  size_t end_adaptation(const std::vector<std::vector<int64_t>>& counts, double tokens, int forwards, int backwards);
  bool ready(size_t id) const;
  // The routed experts' precision now (a ladder tier switch): the simulated experts' weight bytes follow it; a
  // measured plant measures the difference itself.
  void set_expert_precision(const std::string& p);
  StepReading take(size_t id);  // waits until final, returns it and forgets the window
  // The sensor's latest sample (nullopt before the first). Any thread for "model" (the meter's sampler reads the
  // GPU); "sim" reads the simulated GPU, so only the thread that drives the steps may call it.
  std::optional<Sample> latest();
  // Ends the outer window (if a step ever began) and returns it; further steps are not allowed.
  std::optional<WindowResult> close();
  Json describe() const;

 private:
  size_t end_busy(double busy);  // ends the step window; the simulated GPU ran `busy` seconds of it (measured: unused)
  std::string plant_;
  double sim_period_s_ = 0;
  PlantShape shape_;
  std::unique_ptr<SimulatedGpu> gpu_;  // sim only
  std::unique_ptr<PowerSensor> sensor_;
  std::unique_ptr<EnergyMeter> meter_;
  Timer wall_;
  bool outer_open_ = false, closed_ = false, carried_ = false;
};

}  // namespace wattmoe
