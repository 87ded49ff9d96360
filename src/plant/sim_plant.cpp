#include "plant/sim_plant.h"

#include "core/error.h"

namespace wattmoe {

double run_step_work(SimulatedGpu& gpu, const PlantShape& s, const std::vector<std::vector<int64_t>>& counts,
                     double tokens, double scale) {
  double busy = 0;
  for (size_t l = 0; l < counts.size(); ++l) {
    busy += gpu.run({2 * s.dense_params * tokens, s.dense_params * s.dense_weight_bytes, "dense"});
    for (int64_t c : counts[l]) {
      if (c <= 0) continue;
      const ExpertWork w = expert_work(s.expert, double(c) * scale);
      busy += gpu.run({w.flops, w.bytes, "expert"});
    }
  }
  return busy;
}

double run_adaptation_work(SimulatedGpu& gpu, const PlantShape& s, const std::vector<std::vector<int64_t>>& counts,
                           double tokens, int forwards, int backwards) {
  double busy = 0;
  for (int i = 0; i < forwards; ++i) busy += run_step_work(gpu, s, counts, tokens, 1.0);
  for (int i = 0; i < backwards; ++i) busy += run_step_work(gpu, s, counts, 2 * tokens, 2.0);
  return busy;
}

SimulatedPlant::SimulatedPlant(const SimGpuParams& p, const PlantShape& s) : gpu_(p), params_(p), shape_(s) {}

PlantStep SimulatedPlant::step(const std::vector<std::vector<int64_t>>& counts, int64_t window_tokens,
                               double batch_scale) {
  const PlantShape& s = shape_;
  WATTMOE_CHECK(batch_scale > 0 && batch_scale <= 1 && s.streams > 0 && s.period_s > 0);
  const double scale = s.streams * batch_scale;
  const double t0 = gpu_.time(), e0 = gpu_.true_energy_j();
  PlantStep r;
  r.tokens = double(window_tokens) * scale;
  double busy = run_step_work(gpu_, s, counts, r.tokens, scale);
  if (adapt_forwards_ + adapt_backwards_ > 0) {
    const double e1 = gpu_.true_energy_j();
    r.adapt_seconds = run_adaptation_work(gpu_, s, adapt_counts_, adapt_tokens_, adapt_forwards_, adapt_backwards_);
    r.adapt_joules = gpu_.true_energy_j() - e1 - params_.idle_w * r.adapt_seconds;
    busy += r.adapt_seconds;
    adapt_forwards_ = adapt_backwards_ = 0;
  }
  const double elapsed = gpu_.time() - t0;
  if (elapsed < s.period_s) gpu_.idle(s.period_s - elapsed);
  r.seconds = gpu_.time() - t0;
  r.busy_seconds = busy;
  r.joules = gpu_.true_energy_j() - e0;
  r.overrun = busy > s.period_s;
  r.sample = gpu_.sample();
  return r;
}

void SimulatedPlant::charge_adaptation(const std::vector<std::vector<int64_t>>& counts, double tokens, int forwards,
                                       int backwards) {
  WATTMOE_CHECK(forwards >= 0 && backwards >= 0 && tokens >= 0);
  adapt_counts_ = counts, adapt_tokens_ = tokens, adapt_forwards_ = forwards, adapt_backwards_ = backwards;
}

Json SimulatedPlant::step_extras(const PlantStep& st) const {
  return Json{{"sim_adapt_j", st.adapt_joules}, {"sim_adapt_s", st.adapt_seconds}};
}

Json SimulatedPlant::describe() const {
  // The expert shape as doubles, as the summary has always spelled it (4096.0).
  return Json{{"label", "simulated GPU (not measured)"}, {"gpu", params_.name}, {"streams", shape_.streams},
              {"step_period_s", shape_.period_s},
              {"adaptation", "priced: the window's own work per forward; per backward twice its FLOPs, weights read once"},
              {"expert_shape", {double(shape_.expert.hidden), double(shape_.expert.ffn)}}};
}

}  // namespace wattmoe
