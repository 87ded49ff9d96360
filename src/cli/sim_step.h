// The work one window of the stream would put on a GPU, fed to the simulated GPU (virtual time, labelled simulated
// everywhere it is reported). The shipped model is tiny, so by default every expert is priced as a Mixtral-shaped
// expert (H = 4096, I = 14336, bf16) and each window stands for `streams` concurrent streams routed like it: the
// step's (token, expert) pairs are the window's counts × streams × batch_scale. Per MoE layer and activated expert e
// with n_e pairs, energy/expert_work.h:  flops = 2·3·H·I·n_e,  bytes = 3·H·I·wbytes + (2H + 2I)·abytes·n_e  (weights
// read once per step); per layer the dense part (attention projections and router, `dense_params` weights of
// expert.weight_bytes bytes) adds flops = 2·P·T and bytes = P·wbytes. Steps start every `period_s`; the GPU idles for what is left, so power = step energy / duration.
#pragma once
#include <cstdint>
#include <vector>

#include "energy/expert_work.h"
#include "energy/sim_gpu.h"

namespace wattmoe::cli {

struct SimStepShape {
  ExpertShape expert{4096, 14336, 2, 2, 3};  // every expert priced as this (Mixtral, bf16)
  double dense_params = 4096.0 * (4096 + 1024 + 1024 + 4096) + 8.0 * 4096;  // per layer: q, k, v, o, router
  double streams = 16;     // concurrent streams each window stands for
  double period_s = 0.02;  // one step per period (arrival cadence)
};

struct SimStepResult {
  double seconds = 0;       // step duration (≥ period_s; longer when the work overran)
  double busy_seconds = 0;  // time the simulated GPU was running work
  double joules = 0;        // exact simulated energy of the step
  double tokens = 0;        // tokens the step processed (window tokens × streams × batch_scale)
  double power_w() const { return seconds > 0 ? joules / seconds : 0; }
  double joules_per_token() const { return tokens > 0 ? joules / tokens : 0; }
};

// counts: [layer][expert] (token, expert) pairs of the window (empty rows for dense layers).
SimStepResult run_sim_step(SimulatedGpu& gpu, const SimStepShape& shape, const std::vector<std::vector<int64_t>>& counts,
                           int64_t window_tokens, double batch_scale);

}  // namespace wattmoe::cli
