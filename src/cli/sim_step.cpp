#include "cli/sim_step.h"

#include "core/error.h"

namespace wattmoe::cli {

SimStepResult run_sim_step(SimulatedGpu& gpu, const SimStepShape& s, const std::vector<std::vector<int64_t>>& counts,
                           int64_t window_tokens, double batch_scale) {
  WATTMOE_CHECK(batch_scale > 0 && batch_scale <= 1 && s.streams > 0 && s.period_s > 0);
  const double scale = s.streams * batch_scale;
  const double t0 = gpu.time(), e0 = gpu.true_energy_j();
  SimStepResult r;
  r.tokens = double(window_tokens) * scale;
  double busy = 0;
  for (size_t l = 0; l < counts.size(); ++l) {
    busy += gpu.run({2 * s.dense_params * r.tokens, s.dense_params * s.expert.weight_bytes, "dense"});
    for (int64_t c : counts[l]) {
      if (c <= 0) continue;
      const ExpertWork w = expert_work(s.expert, double(c) * scale);
      busy += gpu.run({w.flops, w.bytes, "expert"});
    }
  }
  const double elapsed = gpu.time() - t0;
  if (elapsed < s.period_s) gpu.idle(s.period_s - elapsed);
  r.seconds = gpu.time() - t0;
  r.busy_seconds = busy;
  r.joules = gpu.true_energy_j() - e0;
  return r;
}

}  // namespace wattmoe::cli
