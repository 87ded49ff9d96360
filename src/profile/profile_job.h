// The profiling job behind `wattmoe profile`, as library code: every block of a model (profile/model_blocks.h:
// attention, router, each routed expert, the shared expert) run on the CPU or the GPU with a real sensor (RAPL, NVML)
// or priced by the simulated GPU, J = a + b·tokens fitted per block (energy/profiler.h), the cost table written, and
// optionally the analytic model's hardware coefficients fitted and the full MoE layer checked (GPU). Options are
// plain data with their defaults here; errors name the option as the command line spells it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "energy/profiler.h"
#include "io/json.h"

namespace wattmoe {

struct ProfileJob {
  std::string model, config, device = "cpu", sensor, out, token_counts, sim_params, check_layer;
  uint64_t seed = 0;
  bool random_init = false;  // profile config's shape with random weights from seed (no checkpoint)
  int max_tokens = 0;
  double min_window_s = ProfileOptions{}.min_window_s, idle_s = -1, settle_s = ProfileOptions{}.settle_s;
  int repeats = ProfileOptions{}.repeats, warmup = ProfileOptions{}.warmup, graph_calls = 16;
  bool fit_hardware = false;
  bool launch_records = true;  // cuda: trace each (block, T) once more for its kernels' occupancy (CUPTI)
  std::string command;  // the command line as run, for the table's "command" field
  bool quiet = false;   // nothing on stdout (the caller prints the returned table: wattmoe profile --json)
};

// --tokens-per-call "1,8,64": distinct integers in [1, 2^20] (fuzzed: fuzz/flags_fuzz.cpp).
std::vector<int> parse_token_counts(const std::string& s);

// Validates, profiles, writes `out` (and `check_layer`), prints a summary table on stdout (unless quiet) and returns
// the cost table written. On the GPU the table also says, per block and token count, which kernels ran and how full
// they could keep the SMs ("launches" in each measurement; "launch_records" says whether CUPTI could record them).
Json run_profile_job(const ProfileJob& a);

}  // namespace wattmoe
