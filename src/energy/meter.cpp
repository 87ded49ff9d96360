#include "energy/meter.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/log.h"

namespace wattmoe {

namespace {
double lerp_at(double t0, double v0, double t1, double v1, double t) {
  if (t1 <= t0 || t <= t0) return t <= t0 ? v0 : v1;
  if (t >= t1) return v1;
  return v0 + (v1 - v0) * (t - t0) / (t1 - t0);
}
double nan_max(double a, double b) { return std::isnan(a) ? b : (std::isnan(b) ? a : std::max(a, b)); }
}  // namespace

const char* energy_method_name(EnergyMethod m) {
  switch (m) {
    case EnergyMethod::Counter: return "counter";
    case EnergyMethod::Integrated: return "integrated";
    default: return "none";
  }
}

EnergyMeter::EnergyMeter(PowerSensor& sensor, MeterOptions opt)
    : sensor_(sensor), opt_(std::move(opt)), caps_(sensor.capabilities()) {
  WATTMOE_REQUIRE(opt_.sample_hz >= 10 && opt_.sample_hz <= 50,
                  "meter: sample_hz: expected 10 to 50 Hz (NVML calls cost ~1 ms each), got {}", opt_.sample_hz);
  WATTMOE_REQUIRE(opt_.ring_capacity > 0, "meter: ring_capacity: expected > 0");
  ring_.reserve(std::min<size_t>(opt_.ring_capacity, 1024));
  {
    std::lock_guard<std::mutex> lk(mu_);
    read_and_ingest_locked();  // a first sample, so the first window has a left neighbour
  }
  if (!caps_.virtual_time && !fault_) thread_ = std::thread([this] { sampler_loop(); });
}

EnergyMeter::~EnergyMeter() { stop(); }

void EnergyMeter::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

double EnergyMeter::power_of(const Sample& s) const {
  if (caps_.power) return s.power_w;
  if (caps_.power_avg) return s.power_avg_w;
  return kNaN;
}

void EnergyMeter::sampler_loop() {
  using clock = std::chrono::steady_clock;
  const auto period = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(1.0 / opt_.sample_hz));
  auto next = clock::now() + period;
  std::unique_lock<std::mutex> lk(mu_);
  while (!stop_) {
    cv_.wait_until(lk, next, [this] { return stop_; });
    if (stop_) break;
    lk.unlock();
    // The slow driver calls run without the lock, so begin/end never wait on them.
    std::optional<Sample> s;
    std::string err;
    try {
      s = sensor_.read();
    } catch (const std::exception& e) {
      err = e.what();
    }
    lk.lock();
    if (!s) {
      record_fault_locked(err);
      break;
    }
    ingest_locked(*s);
    if (fault_) break;
    next += period;
    if (next < clock::now()) next = clock::now() + period;  // fell behind: skip, don't burst
  }
}

void EnergyMeter::read_and_ingest_locked() {
  if (fault_) return;
  try {
    ingest_locked(sensor_.read());
  } catch (const std::exception& e) {
    record_fault_locked(e.what());
  }
}

void EnergyMeter::ingest_locked(const Sample& s) {
  if (std::isnan(s.time_s) || (have_prev_ && s.time_s < prev_.time_s)) {
    record_fault_locked(fmt::format("{}: sample time {} is missing or earlier than the previous {}", sensor_.name(),
                                    s.time_s, prev_.time_s));
    return;
  }
  // Unwrap the energy counter (RAPL-style counters restart at counter_wrap_j; NVML's never does). When the
  // difference over (prev, s] is unknown, windows spanning it fall back to integrated power.
  const bool counter_valid = caps_.energy && !std::isnan(s.energy_j);
  bool interval_ok = counter_valid;
  double u = prev_u_;
  if (counter_valid && !have_prev_) {
    u = s.energy_j;
  } else if (counter_valid && std::isnan(prev_.energy_j)) {
    interval_ok = false;
  } else if (counter_valid) {
    double d = counter_step(prev_.energy_j, s.energy_j, caps_.counter_wrap_j);
    if (std::isnan(d)) {
      log_warn("meter: {} energy counter went backwards ({} -> {} J); windows spanning it use integrated power",
               sensor_.name(), prev_.energy_j, s.energy_j);
      interval_ok = false;
      d = 0;
    }
    u = prev_u_ + d;
  }
  const double p = power_of(s), pp = have_prev_ ? power_of(prev_) : kNaN;
  const double t = s.time_s, tp = have_prev_ ? prev_.time_s : t;

  // The counter lags: it holds the energy at its last update, up to one tick ago. Estimate the energy now as
  // that value plus the integrated power since the update, placed at the middle of the span it can lie in.
  auto trapezoid = [&](double lo) {
    if (!have_prev_ || t <= lo) return 0.0;
    const double v = 0.5 * (lerp_at(tp, pp, t, p, lo) + p) * (t - lo);
    return std::isnan(v) ? 0.0 : v;
  };
  double est = u;
  if (!have_prev_ || !interval_ok) {
    tail_ = 0;
  } else if (u != prev_u_) {
    // The update fell in (tp, t] and, ticking every counter_tick_s, within the last tick before t.
    const double tick = caps_.counter_tick_s;
    tail_ = tick > 0 ? trapezoid(std::max(0.5 * (tp + t), t - 0.5 * tick)) : 0.0;
    est = u + tail_;
  } else {
    tail_ += trapezoid(tp);
    est = u + tail_;
  }

  for (auto it = active_.begin(); it != active_.end();) {
    Active& a = *it;
    const double b = a.r.begin_s, e = a.end;
    if (!interval_ok && t >= b) a.counter_ok = false;
    if (have_prev_) {
      const double lo = std::max(tp, b), hi = std::min(t, e);
      if (hi > lo) {
        const double p_lo = lerp_at(tp, pp, t, p, lo), p_hi = lerp_at(tp, pp, t, p, hi);
        if (std::isnan(p_lo) || std::isnan(p_hi)) a.integ_ok = false;
        else a.integ += 0.5 * (p_lo + p_hi) * (hi - lo);
        a.r.peak_w = nan_max(a.r.peak_w, nan_max(p_lo, p_hi));
        // A sample's clock-event bits describe the interval that ends at it.
        if (s.clock_event_reasons)
          for (size_t k = 0; k < kClockEventReasons.size(); ++k)
            if (*s.clock_event_reasons & kClockEventReasons[k].bit) a.r.reason_seconds[k] += hi - lo;
      }
    }
    if (!a.have_e0 && t >= b) {
      a.e0 = have_prev_ ? lerp_at(tp, prev_est_, t, est, b) : est;
      a.have_e0 = true;
    }
    if (t >= b && t <= e) {
      a.r.samples++;
      a.r.peak_w = nan_max(a.r.peak_w, p);
      a.r.max_temp_c = nan_max(a.r.max_temp_c, s.gpu_temp_c);
    }
    if (a.ended && t >= e) {
      finalize_locked(a, have_prev_ ? lerp_at(tp, prev_est_, t, est, e) : est, true);
      it = active_.erase(it);
    } else {
      ++it;
    }
  }

  prev_ = s;
  prev_u_ = u;
  prev_est_ = est;
  have_prev_ = true;
  if (ring_.size() < opt_.ring_capacity) {
    ring_.push_back(s);
  } else {
    ring_[ring_head_] = s;
    ring_head_ = (ring_head_ + 1) % ring_.size();
  }
  taken_++;
  cv_.notify_all();
}

void EnergyMeter::finalize_locked(Active& a, double e1, bool complete) {
  WindowResult& r = a.r;
  r.end_s = a.end;
  r.seconds = a.end - r.begin_s;
  r.complete = complete;
  r.covered_s = complete ? r.seconds : std::max(0.0, std::min(a.end, have_prev_ ? prev_.time_s : r.begin_s) - r.begin_s);
  if (caps_.energy && a.counter_ok && a.have_e0 && !std::isnan(e1)) r.joules_counter = e1 - a.e0;
  if ((caps_.power || caps_.power_avg) && a.integ_ok) r.joules_integrated = a.integ;
  if (!std::isnan(r.joules_counter)) {
    r.method = EnergyMethod::Counter;
    r.joules = r.joules_counter;
  } else if (!std::isnan(r.joules_integrated)) {
    r.method = EnergyMethod::Integrated;
    r.joules = r.joules_integrated;
  }
  r.mean_w = r.covered_s > 0 ? r.joules / r.covered_s : r.peak_w;
  if (caps_.counter_tick_s > 0 && r.seconds < 2 * caps_.counter_tick_s) {
    r.warning = true;
    r.warning_msg = fmt::format(
        "window '{}' lasted {:.3f} s, shorter than 2 x the energy counter tick ({} s): its energy is unreliable; "
        "measure >= {} s or span many steps",
        r.name, r.seconds, caps_.counter_tick_s, 2 * caps_.counter_tick_s);
  }
  if (!complete) r.error = fault_.value_or("sensor stopped");
  result_slot_locked(a.slot) = Slot{r, true};
}

void EnergyMeter::record_fault_locked(const std::string& msg) {
  if (fault_) return;
  fault_ = msg.empty() ? "sensor failed" : msg;
  log_warn("meter: sensor {} failed, sampling stopped, earlier samples kept: {}", sensor_.name(), *fault_);
  // Windows already ended but not yet covered by samples will get no more: close them with what there is.
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->ended) {
      finalize_locked(*it, caps_.energy ? prev_est_ : kNaN, false);
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  cv_.notify_all();
}

void EnergyMeter::begin(std::string name) {
  WATTMOE_REQUIRE(!name.empty(), "meter: begin: the window needs a name");
  if (opt_.sync) opt_.sync();
  std::lock_guard<std::mutex> lk(mu_);
  Active a;
  a.r.name = std::move(name);
  a.r.depth = int(stack_.size());
  if (caps_.virtual_time && !fault_) {
    // The window starts at the sample taken now, so begin and the sample coincide exactly.
    Sample s;
    try {
      s = sensor_.read();
    } catch (const std::exception& e) {
      record_fault_locked(e.what());
    }
    a.r.begin_s = fault_ ? (have_prev_ ? prev_.time_s : 0.0) : s.time_s;
    active_.push_back(std::move(a));
    stack_.push_back(&active_.back());
    if (!fault_) ingest_locked(s);
    return;
  }
  a.r.begin_s = caps_.virtual_time ? (have_prev_ ? prev_.time_s : 0.0) : sensor_.now();
  active_.push_back(std::move(a));
  stack_.push_back(&active_.back());
}

size_t EnergyMeter::end(std::string_view name) {
  if (opt_.sync) opt_.sync();
  std::lock_guard<std::mutex> lk(mu_);
  WATTMOE_REQUIRE(!stack_.empty(), "meter: end('{}') without a matching begin (no window is open)", name);
  Active* a = stack_.back();
  WATTMOE_REQUIRE(a->r.name == name, "meter: end('{}') but the innermost open window is '{}' (windows must nest)",
                  name, a->r.name);
  stack_.pop_back();
  a->ended = true;
  a->slot = results_base_ + results_.size();
  results_.push_back(Slot{});
  const size_t id = a->slot;
  auto it = std::find_if(active_.begin(), active_.end(), [&](const Active& x) { return &x == a; });
  if (fault_) {
    a->end = std::max(a->r.begin_s, caps_.virtual_time ? (have_prev_ ? prev_.time_s : 0.0) : sensor_.now());
    finalize_locked(*a, caps_.energy ? prev_est_ : kNaN, false);
    active_.erase(it);
  } else if (caps_.virtual_time) {
    Sample s;
    bool ok = true;
    try {
      s = sensor_.read();
    } catch (const std::exception& e) {
      ok = false;
      a->end = have_prev_ ? prev_.time_s : a->r.begin_s;
      record_fault_locked(e.what());  // closes every ended window, this one included
    }
    if (ok) {
      a->end = s.time_s;
      ingest_locked(s);  // finalizes the window: the sample is at its end
    }
  } else {
    a->end = sensor_.now();
  }
  cv_.notify_all();
  return id;
}

int EnergyMeter::depth() const {
  std::lock_guard<std::mutex> lk(mu_);
  return int(stack_.size());
}

std::optional<Sample> EnergyMeter::poll() {
  std::lock_guard<std::mutex> lk(mu_);
  if (caps_.virtual_time) read_and_ingest_locked();
  if (fault_ || !have_prev_) return std::nullopt;
  return prev_;
}

bool EnergyMeter::ready(size_t id) const {
  std::lock_guard<std::mutex> lk(mu_);
  return result_slot_locked(id).ready;
}

WindowResult EnergyMeter::wait(size_t id) {
  std::unique_lock<std::mutex> lk(mu_);
  Slot& slot = result_slot_locked(id);  // a deque's elements stay put while others are pushed at its back
  cv_.wait(lk, [&] { return slot.ready || stop_; });
  if (!slot.ready) {
    // Stopped before a sample covered the window: close it with what there is.
    for (auto it = active_.begin(); it != active_.end(); ++it)
      if (it->ended && it->slot == id) {
        finalize_locked(*it, caps_.energy ? prev_est_ : kNaN, false);
        active_.erase(it);
        break;
      }
  }
  return slot.r;
}

const EnergyMeter::Slot& EnergyMeter::result_slot_locked(size_t id) const {
  WATTMOE_CHECK(id >= results_base_ && id < results_base_ + results_.size(), "meter: no window {} (results {}..{})", id,
                results_base_, results_base_ + results_.size());
  return results_[id - results_base_];
}

void EnergyMeter::discard_through(size_t id) {
  std::lock_guard<std::mutex> lk(mu_);
  WATTMOE_CHECK(id < results_base_ + results_.size(), "meter: no window {}", id);
  while (results_base_ <= id) {
    WATTMOE_CHECK(results_.front().ready, "meter: discard_through({}) before window {} is final", id, results_base_);
    results_.pop_front(), ++results_base_;
  }
}

std::vector<WindowResult> EnergyMeter::flush() {
  size_t first, n;
  {
    std::lock_guard<std::mutex> lk(mu_);
    first = results_base_, n = results_base_ + results_.size();
  }
  std::vector<WindowResult> out;
  for (size_t i = first; i < n; ++i) out.push_back(wait(i));
  return out;
}

std::vector<WindowResult> EnergyMeter::results() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<WindowResult> out;
  for (const Slot& s : results_)
    if (s.ready) out.push_back(s.r);
  return out;
}

std::vector<Sample> EnergyMeter::samples() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Sample> out;
  out.reserve(ring_.size());
  for (size_t i = 0; i < ring_.size(); ++i) out.push_back(ring_[(ring_head_ + i) % ring_.size()]);
  return out;
}

size_t EnergyMeter::samples_taken() const {
  std::lock_guard<std::mutex> lk(mu_);
  return taken_;
}

std::optional<std::string> EnergyMeter::fault() const {
  std::lock_guard<std::mutex> lk(mu_);
  return fault_;
}

}  // namespace wattmoe
