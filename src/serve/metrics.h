// What the server reports at GET /metrics: a snapshot of its state and counters (ServeStats, filled by the
// scheduler, serve/engine.h) rendered in the Prometheus text exposition format (version 0.0.4). docs/serve.md lists
// every metric. Energy metrics carry the label source="simulated" or source="measured".
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "energy/sensor.h"

namespace wattmoe {

// A cumulative histogram with fixed upper bounds (Prometheus semantics: le buckets, +Inf, _sum, _count).
struct Histogram {
  std::vector<double> bounds;  // ascending
  std::vector<uint64_t> counts;  // per bucket (not cumulative), bounds.size() + 1 (the last is +Inf)
  double sum = 0;
  uint64_t n = 0;
  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double x);
  double quantile(double q) const;  // upper bound of the bucket holding the q-quantile (NaN when empty)
};

// Latency buckets in seconds, 5 ms to 5 minutes.
std::vector<double> latency_buckets();

struct ServeStats {
  std::string model, source;  // served model id; "simulated" or "measured"
  // gauges: the scheduler now
  int running = 0, queued = 0, max_batch = 0, max_queue = 0, slots_free = 0, admit_limit = 0;
  bool draining = false;
  int memory_pressure = 0;  // serve/engine.h MemoryLevel: 0 none, 1 near capacity (batch halved), 2 refusing
  double host_available_bytes = NAN;
  // gauges: the last control period (steps' time, not idle time)
  double power_w = NAN, joules_per_token = NAN, tokens_per_s = NAN, experts_per_token = NAN;
  Sample sample;  // the sensor's latest reading (temperature, clocks, clock-event reasons, energy counter)
  // the budget
  bool budget_active = false;
  std::string measure, control_policy, routing_policy;
  double target = NAN, effort_u = 0, batch_scale = 1;
  int rung = 0;
  bool thermal_active = false;
  std::string expert_tier;  // the routed experts' precision now (the ladder's tier level switches it)
  uint64_t tier_switches = 0;
  double tier_switch_seconds = 0;  // host time the switches took (inside steps)
  // the batched decode step as CUDA graphs (model/runner.h RunnerInfo): on, and steps captured and replayed so far
  bool decode_graphs = false;
  int64_t graph_captures = 0, graph_replays = 0;
  // counters since start
  double energy_j = 0;  // metered over every step
  double billed_j = 0;  // shared out to requests (equals energy_j up to rounding once every step is billed)
  uint64_t steps = 0;
  double step_seconds = 0;  // metered seconds of the steps and adaptation steps (the windows of energy_j)
  uint64_t prompt_tokens = 0, completion_tokens = 0, forward_tokens = 0;
  std::map<std::string, uint64_t> requests;  // finished, by outcome: ok, cancelled, error
  std::map<std::string, uint64_t> rejected;  // refused, by reason: queue_full, memory, draining, bad_request, ...
  std::vector<std::vector<uint64_t>> expert_tokens;  // [layer][expert] (token, expert) pairs; empty rows: dense
  // test-time training (serve/engine.h EngineConfig::ttt)
  bool ttt = false;
  int ttt_queued = 0;
  uint64_t ttt_windows = 0, ttt_adapted = 0, ttt_steps = 0, ttt_resets = 0, ttt_dropped = 0;
  double ttt_seconds = 0, ttt_energy_j = 0;  // adaptation's wall time and metered energy (billed to no request)
  double ttt_distance = 0;  // L2 distance of θ's trainable ranges from the source's (measured at most once a second)
  Histogram latency{latency_buckets()}, first_token{latency_buckets()}, queue_wait{latency_buckets()};
};

std::string prometheus_text(const ServeStats& s);

}  // namespace wattmoe
