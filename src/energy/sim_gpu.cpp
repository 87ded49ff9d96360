#include "energy/sim_gpu.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

SimulatedGpu::SimulatedGpu(SimGpuParams p) : p_(std::move(p)) {
  validate(p_);
  temp_ = p_.initial_temp_c >= 0 ? p_.initial_temp_c : p_.ambient_c + p_.idle_w * p_.thermal_resistance_c_per_w;
  power_ = p_.idle_w;
  clock_mhz_ = p_.min_sm_clock_mhz;
  history_.emplace_back(0.0, 0.0);
}

void SimulatedGpu::set_memory_used(uint64_t bytes) {
  WATTMOE_REQUIRE(bytes <= p_.mem_total_bytes, "sim: set_memory_used: {} bytes exceeds mem_total_bytes {}", bytes,
                  p_.mem_total_bytes);
  mem_used_ = bytes;
}

double SimulatedGpu::work_seconds(const Work& w, double x) const {
  double compute = w.flops > 0 ? w.flops / (p_.peak_flops * x) : 0;
  double memory = w.bytes > 0 ? w.bytes / p_.bandwidth_bytes_per_s : 0;
  return std::max(compute, memory) + p_.launch_overhead_s;
}

double SimulatedGpu::work_power_w(const Work& w, double x) const {
  double t = work_seconds(w, x);
  if (t <= 0) return p_.idle_w;
  double dyn_j = 1e-12 * (p_.pj_per_flop * std::pow(x, p_.clock_power_exponent - 1) * w.flops + p_.pj_per_byte * w.bytes);
  return p_.idle_w + p_.active_w + dyn_j / t;
}

SimulatedGpu::Limit SimulatedGpu::thermal_limit() const {
  Limit l{1.0, 0};
  if (temp_ > p_.slowdown_temp_c) {
    l.fraction = 1.0 - p_.slowdown_clock_per_c * (temp_ - p_.slowdown_temp_c);
    l.reasons |= ClockEvent::kSwThermalSlowdown;
  }
  if (temp_ >= p_.hw_slowdown_temp_c) {
    l.fraction = std::min(l.fraction, p_.hw_slowdown_clock_fraction);
    l.reasons |= ClockEvent::kHwThermalSlowdown;
  }
  l.fraction = std::max(l.fraction, p_.min_sm_clock_mhz / p_.max_sm_clock_mhz);
  return l;
}

void SimulatedGpu::advance(double dt, double power, double clock_mhz, uint64_t reasons) {
  if (dt <= 0) return;
  const double t_end = t_ + dt;
  WATTMOE_REQUIRE(t_end <= kMaxSimSeconds, "sim: simulated time would reach {} s, beyond the simulator's range ({} s)",
                  t_end, kMaxSimSeconds);
  // Counter updates inside this segment see the energy at the tick instant (power is constant here); only the last
  // one stays, so it is computed directly: the largest k with double(k)·tick <= t_end, as a tick-by-tick loop
  // would find it (O(1) per segment, whatever the tick).
  const double tick = p_.counter_tick_s;
  if (double(next_tick_) * tick <= t_end) {
    int64_t k = std::max(next_tick_, int64_t(std::floor(t_end / tick)));
    while (double(k + 1) * tick <= t_end) ++k;
    while (k > next_tick_ && double(k) * tick > t_end) --k;
    const double mj = std::floor((energy_ + power * (double(k) * tick - t_)) * 1000.0);
    WATTMOE_REQUIRE(mj < 1.8e19, "sim: the energy counter would overflow ({} mJ): power {} W over {} s", mj, power,
                    dt);
    counter_mj_ = uint64_t(mj);
    next_tick_ = k + 1;
  }
  const double t_ss = p_.ambient_c + power * p_.thermal_resistance_c_per_w;
  temp_ = t_ss + (temp_ - t_ss) * std::exp(-dt / p_.thermal_tau_s);
  energy_ += power * dt;
  t_ = t_end;
  power_ = power;
  clock_mhz_ = clock_mhz;
  reasons_ = reasons;
  for (size_t i = 0; i < kClockEventReasons.size(); ++i)
    if (reasons & kClockEventReasons[i].bit) reason_s_[i] += dt;
  history_.emplace_back(t_, energy_);
  while (history_.size() > 2 && history_[1].first <= t_ - p_.power_avg_window_s) history_.pop_front();
}

double SimulatedGpu::energy_at(double t) const {
  if (t <= history_.front().first) return history_.front().second;
  for (size_t i = 1; i < history_.size(); ++i) {
    const auto& [t1, e1] = history_[i];
    if (t <= t1) {
      const auto& [t0, e0] = history_[i - 1];
      return t1 > t0 ? e0 + (e1 - e0) * (t - t0) / (t1 - t0) : e1;
    }
  }
  return energy_;
}

void SimulatedGpu::idle(double seconds) {
  WATTMOE_REQUIRE(seconds >= 0 && std::isfinite(seconds), "sim: idle: expected seconds >= 0, got {}", seconds);
  WATTMOE_REQUIRE(t_ + seconds <= kMaxSimSeconds, "sim: idle {} s: simulated time would reach {} s, beyond the "
                  "simulator's range ({} s)", seconds, t_ + seconds, kMaxSimSeconds);
  // Constant power, so one exact segment; the thermal bits are what a sensor would show while idle.
  advance(seconds, p_.idle_w, p_.min_sm_clock_mhz, ClockEvent::kGpuIdle | thermal_limit().reasons);
}

double SimulatedGpu::run(const Work& w) {
  WATTMOE_REQUIRE(w.flops >= 0 && std::isfinite(w.flops), "sim: run '{}': flops: expected >= 0, got {}", w.name, w.flops);
  WATTMOE_REQUIRE(w.bytes >= 0 && std::isfinite(w.bytes), "sim: run '{}': bytes: expected >= 0, got {}", w.name, w.bytes);
  const double x_min = p_.min_sm_clock_mhz / p_.max_sm_clock_mhz;
  // Refused before any state changes: work that ends beyond the simulator's range even at the full clock, or that
  // could need more than kMaxThermalSubsteps thermal sub-steps (each is at most thermal_step_s of the slowest run).
  const double fastest = work_seconds(w, 1.0), slowest = work_seconds(w, x_min);
  WATTMOE_REQUIRE(t_ + fastest <= kMaxSimSeconds, "sim: run '{}' takes at least {} s: simulated time would go beyond "
                  "the simulator's range ({} s)", w.name, fastest, kMaxSimSeconds);
  // The most the run can draw: capped at power_limit_w, unless even the lowest clock draws more.
  const double max_w = std::max(std::min(work_power_w(w, 1.0), p_.power_limit_w), work_power_w(w, x_min));
  const double hottest = p_.ambient_c + max_w * p_.thermal_resistance_c_per_w;
  WATTMOE_REQUIRE(std::max(temp_, hottest) <= p_.slowdown_temp_c || slowest / p_.thermal_step_s <= kMaxThermalSubsteps,
                  "sim: run '{}' may take {} s of simulated time in {} s thermal sub-steps (more than {}): smaller work "
                  "per step (--sim-streams) or a larger thermal_step_s", w.name, slowest, p_.thermal_step_s,
                  kMaxThermalSubsteps);
  const double start = t_, e0 = energy_;
  last_ = SimRunInfo{w.name, start, 0, 0, p_.max_sm_clock_mhz, 0};
  double remaining = 1.0;  // fraction of the work still to do
  while (remaining > 0) {
    Limit lim = thermal_limit();
    double x = lim.fraction;
    uint64_t reasons = lim.reasons;
    if (work_power_w(w, x) > p_.power_limit_w) {
      // Largest clock whose power fits under the cap (power grows with the clock); fixed iteration count
      // keeps the result deterministic.
      double lo = x_min, hi = x;
      for (int i = 0; i < 60; ++i) {
        double mid = 0.5 * (lo + hi);
        (work_power_w(w, mid) > p_.power_limit_w ? hi : lo) = mid;
      }
      x = lo;
      reasons |= ClockEvent::kSwPowerCap;
    }
    const double total = work_seconds(w, x), power = work_power_w(w, x);
    double dt = remaining * total;
    // Sub-step only while the temperature could cross a threshold that changes the clock.
    const double t_ss = p_.ambient_c + power * p_.thermal_resistance_c_per_w;
    const bool thermal_matters = std::max(temp_, t_ss) > p_.slowdown_temp_c;
    if (thermal_matters && dt > p_.thermal_step_s) dt = p_.thermal_step_s;
    advance(dt, power, x * p_.max_sm_clock_mhz, reasons);
    last_.min_sm_clock_mhz = std::min(last_.min_sm_clock_mhz, x * p_.max_sm_clock_mhz);
    last_.reasons |= reasons;
    remaining = dt >= remaining * total ? 0 : remaining - dt / total;
  }
  last_.seconds = t_ - start;
  last_.joules = energy_ - e0;
  return last_.seconds;
}

Sample SimulatedGpu::sample() const {
  WATTMOE_REQUIRE(p_.sensor_fails_after_s < 0 || t_ <= p_.sensor_fails_after_s,
                  "simulated GPU: the sensor failed at {:.3f} s (fault injected by sensor_fails_after_s {})", t_,
                  p_.sensor_fails_after_s);
  Sample s;
  s.time_s = t_;
  s.power_w = power_;
  const double window = std::min(p_.power_avg_window_s, t_);
  s.power_avg_w = window > 0 ? (energy_ - energy_at(t_ - window)) / window : power_;
  s.energy_j = double(counter_mj_) / 1000.0;
  s.gpu_temp_c = temp_;
  s.sm_clock_mhz = clock_mhz_;
  s.mem_clock_mhz = p_.mem_clock_mhz;
  s.clock_event_reasons = reasons_;
  s.mem_used_bytes = mem_used_;
  s.mem_total_bytes = p_.mem_total_bytes;
  s.power_limit_w = p_.power_limit_w;
  s.thermal_margin_c = p_.slowdown_temp_c - temp_;
  return s;
}

Capabilities SimulatedGpu::capabilities() const {
  Capabilities c;
  c.power = c.power_avg = c.energy = c.gpu_temp = c.sm_clock = c.mem_clock = true;
  c.clock_event_reasons = c.memory = c.power_limit = c.thermal_margin = true;
  c.mem_temp = false;  // not modelled
  c.virtual_time = true;
  c.counter_tick_s = p_.counter_tick_s;
  return c;
}

}  // namespace wattmoe
