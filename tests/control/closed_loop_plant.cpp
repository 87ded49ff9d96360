#include "closed_loop_plant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate(const ClosedLoopPlantConfig& c, const std::string& where) {
  validate(c.gpu, where + " gpu");
  WATTMOE_REQUIRE(c.layers >= 1, "{}: layers = {}: expected >= 1", where, c.layers);
  WATTMOE_REQUIRE(c.num_experts >= 1, "{}: num_experts = {}: expected >= 1", where, c.num_experts);
  WATTMOE_REQUIRE(c.model_k >= 1 && c.model_k <= c.num_experts, "{}: model_k = {}: expected 1 <= k <= E = {}",
                  where, c.model_k, c.num_experts);
  auto pos = [&](double v, const char* name) {
    WATTMOE_REQUIRE(std::isfinite(v) && v > 0, "{}: {} = {}: expected a finite number > 0", where, name, v);
  };
  pos(double(c.expert.hidden), "expert.hidden");
  pos(double(c.expert.ffn), "expert.ffn");
  pos(c.expert.weight_bytes, "expert.weight_bytes");
  pos(c.expert.act_bytes, "expert.act_bytes");
  pos(c.step_period_s, "step_period_s");
  WATTMOE_REQUIRE(std::isfinite(c.dense_params) && c.dense_params >= 0,
                  "{}: dense_params = {}: expected finite >= 0", where, c.dense_params);
  WATTMOE_REQUIRE(c.tokens_per_batch >= 1, "{}: tokens_per_batch = {}: expected >= 1", where,
                  c.tokens_per_batch);
  WATTMOE_REQUIRE(c.batches_per_step >= 1, "{}: batches_per_step = {}: expected >= 1", where,
                  c.batches_per_step);
  WATTMOE_REQUIRE(c.noise >= 0 && c.noise < 0.5, "{}: noise = {}: expected a relative deviation in [0, 0.5)",
                  where, c.noise);
  const auto& pts = c.effort_curve;
  WATTMOE_REQUIRE(
      pts.size() >= 2 && pts.front().first == 0 && pts.front().second == 0 && pts.back().first == 1,
      "{}: effort_curve: expected points (u, c) from (0, 0) to (1, c1), got {} points", where, pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    WATTMOE_REQUIRE(pts[i].second >= 0 && pts[i].second <= 1, "{}: effort_curve[{}]: c = {}: expected [0, 1]",
                    where, i, pts[i].second);
    WATTMOE_REQUIRE(i == 0 || (pts[i].first > pts[i - 1].first && pts[i].second >= pts[i - 1].second),
                    "{}: effort_curve[{}] = ({}, {}): expected u strictly increasing and c non-decreasing",
                    where, i, pts[i].first, pts[i].second);
  }
}

namespace {
ClosedLoopPlantConfig checked(ClosedLoopPlantConfig c) {
  validate(c);
  return c;
}
}  // namespace

ClosedLoopPlant::ClosedLoopPlant(ClosedLoopPlantConfig c) : c_(checked(std::move(c))), rng_(c_.seed) {
  gpu_ = std::make_unique<SimulatedGpu>(c_.gpu);
  sensor_ = std::make_unique<SimSensor>(*gpu_);
  meter_ = std::make_unique<EnergyMeter>(*sensor_);
}

double ClosedLoopPlant::effort_fraction(double u) const {
  const auto& p = c_.effort_curve;
  if (u <= p.front().first) return p.front().second;
  for (size_t i = 1; i < p.size(); ++i)
    if (u <= p[i].first)
      return p[i - 1].second +
             (p[i].second - p[i - 1].second) * (u - p[i - 1].first) / (p[i].first - p[i - 1].first);
  return p.back().second;
}

void ClosedLoopPlant::sense() {
  meter_->poll();
  const Sample smp = sensor_->read();
  sensed_j_ += smp.power_w * (smp.time_s - sensed_t_);
  sensed_t_ = smp.time_s;
}

double ClosedLoopPlant::experts_per_token(const ControlDecision& d) const {
  if (d.rung > 0) return 1.0;
  if (d.policy == "topk") return d.knobs.k_max > 0 ? std::min(d.knobs.k_max, c_.model_k) : c_.model_k;
  return double(c_.model_k) - effort_fraction(d.u) * double(c_.model_k - 1);
}

ClosedLoopStep ClosedLoopPlant::step(const ControlDecision& d) {
  WATTMOE_REQUIRE(d.batch_scale > 0 && d.batch_scale <= 1, "closed-loop plant: batch_scale = {}: expected (0, 1]",
                  d.batch_scale);
  const double t0 = gpu_->time(), e0 = gpu_->true_energy_j();
  const auto rs0 = gpu_->reason_seconds();

  int masked = 0;
  if (!d.layer_masks.empty()) {
    WATTMOE_REQUIRE(int(d.layer_masks[0].size()) == c_.num_experts,
                    "closed-loop plant: mask has {} entries: expected one per expert (E = {})",
                    d.layer_masks[0].size(), c_.num_experts);
    masked = int(std::count(d.layer_masks[0].begin(), d.layer_masks[0].end(), true));
  }
  const double available = double(c_.num_experts - masked);
  WATTMOE_REQUIRE(available >= 1, "closed-loop plant: the mask prunes all {} experts", c_.num_experts);
  const double T = std::max(1.0, std::round(double(c_.tokens_per_batch) * d.batch_scale));
  const double k = std::min(experts_per_token(d), available);
  const double distinct = available * (1.0 - std::pow(1.0 - k / available, T));
  const double L = c_.layers;
  const Work experts{
      expert_flops_per_token(c_.expert) * T * k * L,
      (expert_weight_bytes(c_.expert) * distinct + expert_act_bytes_per_token(c_.expert) * T * k) * L,
      "plant.experts"};
  const Work dense{2.0 * c_.dense_params * T, c_.dense_params * c_.expert.weight_bytes, "plant.dense"};

  meter_->begin("step");
  const double sensed0 = sensed_j_;
  for (int b = 0; b < c_.batches_per_step; ++b) {
    gpu_->run(dense);
    sense();
    gpu_->run(experts);
    sense();
  }
  ClosedLoopStep s;
  const double busy = gpu_->time() - t0;
  s.overrun = busy > c_.step_period_s;
  if (!s.overrun) {
    gpu_->idle(c_.step_period_s - busy);
    sense();
  }
  const WindowResult r = meter_->wait(meter_->end("step"));
  WATTMOE_CHECK(r.complete && std::isfinite(r.joules) && r.seconds > 0, "sim meter window: {}", r.error);
  s.meter_power_w = r.joules / r.seconds;
  const double measured_j = c_.use_meter ? r.joules : sensed_j_ - sensed0;

  s.seconds = gpu_->time() - t0;
  s.tokens = T * c_.batches_per_step;
  s.k_eff = k;
  s.true_joules = gpu_->true_energy_j() - e0;
  s.true_power_w = s.true_joules / s.seconds;
  const double noise = c_.noise > 0 ? std::max(0.0, 1.0 + c_.noise * rng_.normal()) : 1.0;
  s.power_w = measured_j / s.seconds * noise;
  s.joules_per_token = measured_j / s.tokens * noise;
  s.sample = gpu_->sample();
  const auto& rs1 = gpu_->reason_seconds();
  for (size_t i = 0; i < rs1.size(); ++i)
    if (rs1[i] > rs0[i] && (kClockEventReasons[i].bit & kThermalReasonBits))
      s.thermal_bits |= kClockEventReasons[i].bit;
  return s;
}

ControlInput ClosedLoopPlant::input_for(int64_t step, const ClosedLoopStep& s) const {
  ControlInput in;
  in.step = step;
  in.dt_s = s.seconds;
  in.power_w = s.power_w;
  in.joules_per_token = s.joules_per_token;
  in.sample = s.sample;
  return in;
}

}  // namespace wattmoe
