// Helpers for the control tests: error capture, plant/controller configurations, and step-response metrics.
#pragma once
#include "../test_util.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "control/controller.h"
#include "closed_loop_plant.h"
#include "core/error.h"

namespace wattmoe::control_test {

using wattmoe::test::error_of;

// The default plant: Mixtral-shaped, 2 batches of 2048 tokens per 0.25 s step on the H100-like simulator. At
// rung 0 it spans about 466 W (u = 0) to 303 W (u = 1), linear in u.
inline ClosedLoopPlantConfig mixtral_plant() {
  return ClosedLoopPlantConfig{};
}

// OLMoE-shaped (16 layers, 64 experts of H = 2048, I = 1024, top-8): eight discrete k levels for the topk
// tests.
inline ClosedLoopPlantConfig olmoe_plant() {
  ClosedLoopPlantConfig p;
  p.layers = 16;
  p.num_experts = 64;
  p.model_k = 8;
  p.expert.hidden = 2048;
  p.expert.ffn = 1024;
  p.dense_params = 16.0 * (2048.0 * 4.0 * 2048.0 + 64.0 * 2048.0) + 50304.0 * 2048.0;
  p.tokens_per_batch = 4096;
  p.batches_per_step = 12;
  return p;
}

// Ladder costs from per-expert numbers per layer: a_e = the number, b_e = 0, so the ladder ranks by them
// (tokens_per_step 1).
inline std::vector<ExpertCosts> ranked_costs(const std::vector<std::vector<double>>& rows) {
  std::vector<ExpertCosts> out;
  for (const auto& r : rows) {
    ExpertCosts c;
    for (double x : r) c.fixed.push_back(float(x));
    c.per_token.assign(r.size(), 0.f);
    out.push_back(std::move(c));
  }
  return out;
}

inline ControllerConfig controller_for(const ClosedLoopPlantConfig& p, const std::string& policy, double target_w) {
  ControllerConfig c;
  c.budget.target = target_w;
  c.knobs.policy = policy;
  c.knobs.num_experts = p.num_experts;
  c.knobs.model_k = p.model_k;
  c.knobs.budget_full_j = 1.0;  // the plant reads u, not joules; any valid range
  c.knobs.budget_floor_j = 0.1;
  return c;
}

struct Trace {
  std::vector<double> measured, truth, u, floor, temp;
  std::vector<int> k, rung, level;
  std::vector<uint64_t> thermal_bits;
};

// Closed loop for `steps` steps; `before(i)` runs before step i (change targets there).
inline Trace run_loop(Controller& ctl, ClosedLoopPlant& plant, int steps,
                      const std::function<void(int)>& before = {}) {
  Trace t;
  ControlDecision d = ctl.initial();
  for (int i = 0; i < steps; ++i) {
    if (before) before(i);
    const ClosedLoopStep s = plant.step(d);
    t.measured.push_back(ctl.config().budget.measure == Measure::Power ? s.power_w : s.joules_per_token);
    t.truth.push_back(ctl.config().budget.measure == Measure::Power ? s.true_power_w
                                                                    : s.true_joules / s.tokens);
    t.u.push_back(d.u);
    t.floor.push_back(d.thermal_floor);
    t.k.push_back(d.knobs.k_max);
    t.rung.push_back(d.rung);
    t.level.push_back(d.level);
    t.temp.push_back(s.sample.gpu_temp_c);
    t.thermal_bits.push_back(s.thermal_bits);
    d = ctl.update(plant.input_for(i + 1, s));
  }
  return t;
}

// Step-response metrics of y over [from, to) toward `target` after a change at `from`; `up` = the target
// rose.
struct Response {
  double overshoot = 0;  // largest excursion past the target in the step's direction, relative to the target
  int settle = -1;  // steps after `from` until |y − target| ≤ band·target for the rest of the window
  double steady_error = 0;  // largest |y − target| / target over the last `tail` steps
  double u_amplitude = 0;   // max − min of u over the last `tail` steps
};

inline Response response(const std::vector<double>& y, const std::vector<double>& u, int from, int to,
                         double target, bool up, int tail, double band = 0.05) {
  Response r;
  for (int i = from; i < to; ++i) {
    const double past = up ? (y[size_t(i)] - target) / target : (target - y[size_t(i)]) / target;
    r.overshoot = std::max(r.overshoot, past);
  }
  int last_out = from - 1;
  for (int i = from; i < to; ++i)
    if (std::abs(y[size_t(i)] - target) > band * target) last_out = i;
  r.settle = last_out + 1 - from;
  double lo = 1e300, hi = -1e300;
  for (int i = to - tail; i < to; ++i) {
    r.steady_error = std::max(r.steady_error, std::abs(y[size_t(i)] - target) / target);
    lo = std::min(lo, u[size_t(i)]);
    hi = std::max(hi, u[size_t(i)]);
  }
  r.u_amplitude = hi - lo;
  return r;
}

}  // namespace wattmoe::control_test
