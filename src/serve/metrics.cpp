#include "serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ops/quant.h"

namespace wattmoe {

void Histogram::observe(double x) {
  const size_t b = size_t(std::lower_bound(bounds.begin(), bounds.end(), x) - bounds.begin());
  ++counts[b], sum += x, ++n;
}

double Histogram::quantile(double q) const {
  if (n == 0) return NAN;
  const double want = q * double(n);
  uint64_t seen = 0;
  for (size_t b = 0; b < counts.size(); ++b) {
    seen += counts[b];
    if (double(seen) >= want) return b < bounds.size() ? bounds[b] : INFINITY;
  }
  return INFINITY;
}

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

namespace {

// Prometheus float formatting: NaN, +Inf, -Inf spelled its way.
std::string num(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", x);
}

struct Out {
  std::string s;
  void head(const char* name, const char* type, const char* help) {
    s += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void line(const std::string& name, const std::string& labels, double v) {
    s += labels.empty() ? fmt::format("{} {}\n", name, num(v)) : fmt::format("{}{{{}}} {}\n", name, labels, num(v));
  }
  void metric(const char* name, const char* type, const char* help, double v, const std::string& labels = "") {
    head(name, type, help);
    line(name, labels, v);
  }
  void histogram(const char* name, const char* help, const Histogram& h) {
    head(name, "histogram", help);
    uint64_t cum = 0;
    for (size_t b = 0; b < h.bounds.size(); ++b) {
      cum += h.counts[b];
      line(std::string(name) + "_bucket", fmt::format("le=\"{}\"", num(h.bounds[b])), double(cum));
    }
    line(std::string(name) + "_bucket", "le=\"+Inf\"", double(h.n));
    line(std::string(name) + "_sum", "", h.sum);
    line(std::string(name) + "_count", "", double(h.n));
  }
};

}  // namespace

std::string prometheus_text(const ServeStats& st) {
  Out o;
  const std::string src = fmt::format("source=\"{}\"", st.source);
  o.metric("wattmoe_info", "gauge", "the served model and where its energy figures come from", 1,
           fmt::format("model=\"{}\",{}", st.model, src));
  // Energy, power, the sensor
  o.metric("wattmoe_energy_joules_total", "counter", "energy metered over every scheduler step", st.energy_j, src);
  o.metric("wattmoe_energy_billed_joules_total", "counter", "energy shared out to requests (by their tokens per step)",
           st.billed_j, src);
  o.metric("wattmoe_power_watts", "gauge", "mean power over the last control period's steps", st.power_w, src);
  o.metric("wattmoe_joules_per_token", "gauge", "energy per processed token over the last control period",
           st.joules_per_token, src);
  const Sample& s = st.sample;
  o.metric("wattmoe_sensor_power_watts", "gauge", "the sensor's latest instant power", s.power_w, src);
  o.metric("wattmoe_sensor_energy_joules", "gauge", "the sensor's cumulative energy counter", s.energy_j, src);
  o.metric("wattmoe_gpu_temperature_celsius", "gauge", "GPU temperature", s.gpu_temp_c, src);
  o.metric("wattmoe_sm_clock_mhz", "gauge", "SM clock", s.sm_clock_mhz, src);
  o.metric("wattmoe_thermal_margin_celsius", "gauge", "degrees left before thermal slowdown", s.thermal_margin_c, src);
  const uint64_t bits = s.clock_event_reasons.value_or(0);
  o.metric("wattmoe_clock_event_reasons", "gauge", "NVML clock-event reason bits of the latest sample",
           s.clock_event_reasons ? double(bits) : NAN, src);
  o.head("wattmoe_clock_event_reason_active", "gauge", "1 while the clock-event reason is set");
  for (const ClockEventReason& r : kClockEventReasons)
    o.line("wattmoe_clock_event_reason_active", fmt::format("reason=\"{}\",{}", r.name, src), (bits & r.bit) ? 1 : 0);
  // Throughput and routing
  o.metric("wattmoe_tokens_per_second", "gauge", "processed tokens per second of step time, last control period",
           st.tokens_per_s);
  o.metric("wattmoe_experts_per_token", "gauge", "mean experts per token and MoE layer, last control period",
           st.experts_per_token);
  o.head("wattmoe_tokens_total", "counter", "tokens by kind: prompt, completion, forward (every token run)");
  o.line("wattmoe_tokens_total", "kind=\"prompt\"", double(st.prompt_tokens));
  o.line("wattmoe_tokens_total", "kind=\"completion\"", double(st.completion_tokens));
  o.line("wattmoe_tokens_total", "kind=\"forward\"", double(st.forward_tokens));
  o.head("wattmoe_expert_tokens_total", "counter", "(token, expert) pairs routed to each expert of each MoE layer");
  for (size_t l = 0; l < st.expert_tokens.size(); ++l)
    for (size_t e = 0; e < st.expert_tokens[l].size(); ++e)
      o.line("wattmoe_expert_tokens_total", fmt::format("layer=\"{}\",expert=\"{}\"", l, e),
             double(st.expert_tokens[l][e]));
  o.metric("wattmoe_steps_total", "counter", "scheduler steps", double(st.steps));
  o.metric("wattmoe_step_seconds_total", "counter", "metered time of the scheduler's steps and adaptation steps (with the scheduler's work between steps while requests are in flight): the time of wattmoe_energy_joules_total", st.step_seconds);
  // Load, capacity, memory
  o.metric("wattmoe_queue_length", "gauge", "requests waiting for a KV-cache slot", st.queued);
  o.metric("wattmoe_running_sequences", "gauge", "sequences in the running batch", st.running);
  o.metric("wattmoe_kv_slots_free", "gauge", "KV-cache slots not holding a sequence", st.slots_free);
  o.metric("wattmoe_max_batch", "gauge", "KV-cache slots (most sequences decoded together)", st.max_batch);
  o.metric("wattmoe_max_queue", "gauge", "most requests waiting before new ones get 429", st.max_queue);
  o.metric("wattmoe_admit_limit", "gauge", "sequences the batch may hold now (max_batch x the ladder's batch scale)",
           st.admit_limit);
  o.metric("wattmoe_memory_pressure", "gauge",
           "memory pressure: 0 none, 1 near capacity (at most half the batch runs), 2 new requests refused too",
           st.memory_pressure);
  o.metric("wattmoe_host_memory_available_bytes", "gauge", "host memory available (/proc/meminfo)",
           st.host_available_bytes);
  o.metric("wattmoe_draining", "gauge", "1 after SIGTERM: in-flight requests finish, new ones get 503",
           st.draining ? 1 : 0);
  o.head("wattmoe_requests_total", "counter", "finished requests by outcome");
  for (const char* k : {"ok", "cancelled", "error"}) {
    const auto it = st.requests.find(k);
    o.line("wattmoe_requests_total", fmt::format("outcome=\"{}\"", k), it == st.requests.end() ? 0 : double(it->second));
  }
  o.head("wattmoe_requests_rejected_total", "counter", "requests refused before running, by reason");
  for (const auto& [k, v] : st.rejected) o.line("wattmoe_requests_rejected_total", fmt::format("reason=\"{}\"", k), v);
  o.histogram("wattmoe_request_latency_seconds", "time from arrival to the last token", st.latency);
  o.histogram("wattmoe_time_to_first_token_seconds", "time from arrival to the first text", st.first_token);
  o.histogram("wattmoe_queue_wait_seconds", "time from arrival to a KV-cache slot", st.queue_wait);
  // The budget
  o.metric("wattmoe_budget_active", "gauge", "1 while a power or energy budget is held", st.budget_active ? 1 : 0);
  o.metric("wattmoe_budget_target", "gauge", "the budget (W or J/token, label measure)", st.target,
           fmt::format("measure=\"{}\"", st.measure.empty() ? "none" : st.measure));
  o.metric("wattmoe_control_effort", "gauge", "the controller's effort u (0 full quality, 1 cheapest)", st.effort_u);
  o.metric("wattmoe_control_rung", "gauge", "the degradation ladder's rung", st.rung);
  o.metric("wattmoe_control_batch_scale", "gauge", "the ladder's share of the batch let through", st.batch_scale);
  o.metric("wattmoe_thermal_guard_active", "gauge", "1 while the thermal guard holds a floor",
           st.thermal_active ? 1 : 0);
  o.metric("wattmoe_expert_tier_bytes", "gauge", "bytes per routed-expert weight now (label precision)",
           st.expert_tier.empty() ? NAN : ops::expert_precision_bytes(st.expert_tier),
           fmt::format("precision=\"{}\"", st.expert_tier));
  o.metric("wattmoe_expert_tier_switches_total", "counter", "the ladder's tier switches of the routed experts",
           double(st.tier_switches));
  o.metric("wattmoe_expert_tier_switch_seconds_total", "counter", "host time the tier switches took",
           st.tier_switch_seconds);
  o.metric("wattmoe_decode_graphs", "gauge",
           "1 when the batched decode step replays as a CUDA graph (--device cuda, fused kernels)",
           st.decode_graphs ? 1 : 0);
  o.metric("wattmoe_decode_graph_captures_total", "counter", "decode steps captured into a CUDA graph",
           double(st.graph_captures));
  o.metric("wattmoe_decode_graph_replays_total", "counter", "decode steps replayed from a CUDA graph",
           double(st.graph_replays));
  // Test-time training on served text
  o.metric("wattmoe_ttt_enabled", "gauge", "1 when answered requests' texts adapt the model (--ttt)", st.ttt ? 1 : 0);
  o.metric("wattmoe_ttt_queue_length", "gauge", "answered texts waiting for adaptation", st.ttt_queued);
  o.metric("wattmoe_ttt_windows_total", "counter", "texts processed by the adapter", double(st.ttt_windows));
  o.metric("wattmoe_ttt_adapted_windows_total", "counter", "texts the adapter adapted on", double(st.ttt_adapted));
  o.metric("wattmoe_ttt_adaptation_steps_total", "counter", "adaptation optimizer steps", double(st.ttt_steps));
  o.metric("wattmoe_ttt_resets_total", "counter", "resets to the source weights by the guards", double(st.ttt_resets));
  o.metric("wattmoe_ttt_dropped_total", "counter", "texts dropped from a full adaptation queue",
           double(st.ttt_dropped));
  o.metric("wattmoe_ttt_adaptation_seconds_total", "counter", "wall time of adaptation steps", st.ttt_seconds);
  o.metric("wattmoe_ttt_energy_joules_total", "counter", "energy of adaptation steps (in no request's energy_j)",
           st.ttt_energy_j, src);
  o.metric("wattmoe_ttt_param_distance", "gauge", "L2 distance of the serving weights' trainable part from the source",
           st.ttt_distance);
  return o.s;
}

}  // namespace wattmoe
