// EnergyMeter: energy, power, temperature and clock-event time over named, nested windows of execution.
//
//   meter.begin("step");  meter.begin("layer3.moe");  ...  meter.end("layer3.moe");  meter.end("step");
//
// Real sensors (NVML ~1 ms per call) are sampled on a background thread at 10–50 Hz into a ring buffer;
// begin/end only take the time (after the optional sync callback, e.g. a device synchronize) so nothing slow
// sits on the caller's path. A window's result is final once a sample at or after its end has arrived
// (wait()/flush()). Virtual-time sensors (simulator, replay) are sampled synchronously at begin, end and poll(),
// so results are immediate and deterministic.
//
// Energy comes from the sensor's counter when it has one (difference, unwrapped; because the counter only
// updates every tick, each end adds the power integrated since the counter's last update), else from
// integrating power (trapezoid over samples, linear between them). If the sensor throws, the meter records the fault, stops
// sampling and keeps every sample and result from before it; windows it cut short are marked incomplete.
#pragma once
#include <array>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "energy/sensor.h"

namespace wattmoe {

struct MeterOptions {
  double sample_hz = 20;          // background sampling rate for real sensors, 10–50 Hz
  size_t ring_capacity = 4096;    // samples kept for samples() (windows accumulate on the fly, not from here)
  std::function<void()> sync;     // called at begin/end before the time is taken
};

enum class EnergyMethod { Counter, Integrated, None };
const char* energy_method_name(EnergyMethod m);

struct WindowResult {
  std::string name;
  int depth = 0;  // 0 = outermost
  double begin_s = 0, end_s = 0, seconds = 0;
  double joules = kNaN;  // by `method`
  EnergyMethod method = EnergyMethod::None;
  double joules_counter = kNaN;     // energy counter difference
  double joules_integrated = kNaN;  // trapezoid over instant power (or the averaged power if that is all there is)
  double mean_w = kNaN, peak_w = kNaN, max_temp_c = kNaN;
  std::array<double, kClockEventReasons.size()> reason_seconds{};  // kClockEventReasons order
  size_t samples = 0;  // samples taken inside [begin, end]
  bool warning = false;
  std::string warning_msg;
  bool complete = true;  // false: the sensor failed before the window was covered; values cover covered_s only
  double covered_s = 0;
  std::string error;
};

class EnergyMeter {
 public:
  // The sensor must outlive the meter. Takes one sample now (a fault there is recorded, not thrown).
  explicit EnergyMeter(PowerSensor& sensor, MeterOptions opt = {});
  ~EnergyMeter();
  EnergyMeter(const EnergyMeter&) = delete;
  EnergyMeter& operator=(const EnergyMeter&) = delete;

  void begin(std::string name);
  // Closes the innermost window, which must be `name` (Error otherwise). Returns the result's index for wait().
  size_t end(std::string_view name);
  int depth() const;

  // Virtual-time sensors: take a sample now. Real sensors: the latest background sample. nullopt after a fault
  // or before any sample.
  std::optional<Sample> poll();

  bool ready(size_t id) const;
  WindowResult wait(size_t id);          // blocks until window `id` is final (at most ~one sample interval)
  std::vector<WindowResult> flush();     // waits for every ended window; all results (not discarded) in end order
  std::vector<WindowResult> results() const;  // the final ones so far (not discarded), in end order
  // Forgets the results of windows 0..id (each must be final), so a meter that ends a window per step (a server's
  // scheduler, serve/step_energy.h) holds bounded memory. Ids stay as they were; asking for a discarded one is a
  // programming error.
  void discard_through(size_t id);

  std::vector<Sample> samples() const;  // the ring buffer, oldest first
  size_t samples_taken() const;
  std::optional<std::string> fault() const;
  void stop();  // stops the sampler thread (the destructor does this too)
  const Capabilities& capabilities() const { return caps_; }

 private:
  struct Active {
    WindowResult r;
    double end = std::numeric_limits<double>::infinity();
    size_t slot = 0;  // index in results_ once ended
    bool ended = false;
    bool have_e0 = false, counter_ok = true, integ_ok = true;
    double e0 = 0, integ = 0;
  };
  struct Slot {
    WindowResult r;
    bool ready = false;
  };

  void sampler_loop();
  void read_and_ingest_locked();          // virtual-time path: read synchronously
  void ingest_locked(const Sample& s);
  void record_fault_locked(const std::string& msg);
  void finalize_locked(Active& a, double e1, bool complete);
  double power_of(const Sample& s) const;

  PowerSensor& sensor_;
  MeterOptions opt_;
  Capabilities caps_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Active> active_;      // open and ended-but-not-final windows
  std::vector<Active*> stack_;    // the open ones, innermost last
  std::deque<Slot> results_;      // windows results_base_, results_base_ + 1, ... in end order
  size_t results_base_ = 0;       // ids below it were discarded
  const Slot& result_slot_locked(size_t id) const;
  Slot& result_slot_locked(size_t id) {
    return const_cast<Slot&>(static_cast<const EnergyMeter*>(this)->result_slot_locked(id));
  }
  std::vector<Sample> ring_;
  size_t ring_head_ = 0, taken_ = 0;
  bool have_prev_ = false;
  Sample prev_;
  double prev_u_ = 0;             // unwrapped energy counter at prev_
  double prev_est_ = 0;           // energy estimate at prev_: counter + power integrated since its last update
  double tail_ = 0;               // that integrated part
  std::optional<std::string> fault_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace wattmoe
