// wattmoe profile: measure what every expert, attention, router and shared-expert block of a model costs and write
// a cost table — the library's profiling job (profile/profile_job.h). This file maps flags to its options. Its
// stdout starts with what is measured and how ("profile: cpu, sensor sim ... -- SIMULATED"), then the table; with
// --json only the table written, with "schema": "wattmoe.profile/1" and "out".
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/output_flags.h"
#include "profile/profile_job.h"

namespace wattmoe::cli {

namespace {

// The command line as run (for the table's "command" field).
std::string command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), out;
  for (char c : all) out += c == '\0' ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? "wattmoe profile" : out;
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto a = std::make_shared<ProfileJob>();
  auto o = std::make_shared<OutputFlags>();
  CLI::App* cmd = app.add_subcommand(
      "profile", "Measure what every expert, attention, router and shared-expert block costs; write a cost table");
  cmd->add_option("--model", a->model, "checkpoint directory (config.json + safetensors)");
  CLI::Option* seed = cmd->add_option("--random-init", a->seed,
                                      "profile the shape in --config with random weights from this seed (no checkpoint)");
  cmd->add_option("--config", a->config, "HF config.json of the shape to profile (with --random-init)");
  cmd->add_option("--device", a->device, "cpu (our CPU ops) or cuda (our CUDA kernels and cuBLAS); default cpu");
  add_threads_flag(cmd);
  cmd->add_option("--sensor", a->sensor,
                  "nvml (cuda default), rapl (cpu default when readable), or sim (the simulated GPU fed each block's "
                  "FLOPs and bytes; labelled simulated)");
  cmd->add_option("--sim-params", a->sim_params, "simulated GPU parameters (JSON; with --sensor sim)");
  cmd->add_option("--out", a->out, "cost table to write (wattmoe.cost_table.v1 JSON)")->required();
  CLI::Option* per_call = cmd->add_option(
      "--tokens-per-call", a->token_counts,
      "comma-separated tokens per call (default 1,8,64,512,4096 capped by --max-tokens-per-call)");
  add_deprecated_alias(cmd, "--token-counts", per_call, a->token_counts);
  CLI::Option* max_per_call = cmd->add_option("--max-tokens-per-call", a->max_tokens,
                  "most tokens per call (default min(4096, the model's max_position_embeddings))");
  add_deprecated_alias(cmd, "--max-tokens", max_per_call, a->max_tokens);
  CLI::Option* win = cmd->add_option("--min-window-s", a->min_window_s,
                                     "seconds each measured window lasts at least (default 0.5)");
  add_deprecated_alias(cmd, "--min-window", win, a->min_window_s);
  cmd->add_option("--repeats", a->repeats, "windows per block and token count (default 3)");
  cmd->add_option("--warmup", a->warmup, "untimed runs before each pilot (default 2)");
  CLI::Option* settle = cmd->add_option("--settle-s", a->settle_s,
                  "real sensors: seconds each block runs after its pilot before the first window (default 0.25)");
  add_deprecated_alias(cmd, "--settle", settle, a->settle_s);
  cmd->add_option("--cuda-graph", a->graph_calls,
                  "cuda: calls of a block per CUDA graph replay, so small blocks are measured without host launch "
                  "gaps (default 16; 1 = plain launches)");
  CLI::Option* idle = cmd->add_option("--idle-s", a->idle_s,
                                      "seconds of idle power to measure first (default 2; 1 simulated; 0 = skip)");
  add_deprecated_alias(cmd, "--idle", idle, a->idle_s);
  cmd->add_flag("--fit-hardware", a->fit_hardware,
                "fit the analytic model's coefficients (static W, pJ/FLOP, pJ/byte, peak, bandwidth, launch) to the "
                "expert measurements and write them under \"hardware\"");
  cmd->add_option("--check-layer", a->check_layer,
                  "cuda: also run layer 0's full MoE layer at each token count and write measured vs predicted "
                  "energy (and counter vs integrated power) to this JSON file; implies --fit-hardware");
  cmd->add_flag("--launch-records,!--no-launch-records", a->launch_records,
                "cuda: after the energy windows, trace one more run of each block and token count (CUPTI) and write "
                "its kernels' occupancy, registers and shared memory (default on)");
  add_output_flags(cmd, *o, false);  // the table itself is --out
  cmd->callback([a, o, seed] {
    ProfileJob job = *a;
    job.random_init = seed->count() > 0;
    job.command = command_line();
    job.quiet = o->json;
    Json table = run_profile_job(job);
    if (!o->json) return;  // the job printed its summary
    table["schema"] = "wattmoe.profile/1";
    table["out"] = job.out;
    emit_result(*o, table, "");
  });
}

}  // namespace wattmoe::cli
