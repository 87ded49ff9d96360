// wattmoe run: a model reads a text stream window by window under a power or energy budget, optionally adapting
// online — the library's budgeted run (eval/budgeted_run.h says what it does). This file only maps flags to its
// options and hands back the summary (cli/output_flags.h: the verdict and a few lines, or --json / --summary).
#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/defaults.h"
#include "cli/output_flags.h"
#include "cli/routing_flags.h"
#include "cli/ttt_flags.h"
#include "eval/budgeted_run.h"
#include "eval/run_report.h"
#include "io/files.h"
#include "model/checkpoint.h"

namespace wattmoe::cli {

namespace {

struct RunArgs {
  RunConfig run;
  std::string tokenizer;
  OutputFlags out;
  RunArgs() { run.model = default_model_dir(), run.data = "data/kjv.val.txt"; }
};

void run_run(const RunArgs& a) {
  check_run_config(a.run);  // before any work: a bad flag, a GPU-less machine or a CPU-only build fails here
  const std::string& md = a.run.model;
  const std::vector<std::pair<std::string, std::string>> inputs{
      {"--data", a.run.data}, {"--tokenizer", a.tokenizer}, {"--sim-params", a.run.plant.sim_params},
      {"--model", md + "/config.json"}, {"--model", md + "/model.safetensors"}, {"--model", md + "/tokenizer.json"}};
  refuse_output_is_input("--log", a.run.log, inputs);
  refuse_output_is_input("--summary", a.out.summary, inputs);
  refuse_output_is_input("--summary", a.out.summary, {{"--log", a.run.log}});
  const ModelWeights<float> m = load_model<float>(a.run.model);
  const std::unique_ptr<Tokenizer> tok = model_tokenizer(a.run.model, a.tokenizer, m.config.vocab_size);
  const TokenStream stream = load_token_stream(a.run.data, *tok, 2);
  const Json summary = run_budgeted(a.run, m, stream);
  emit_result(a.out, summary, run_report_text(summary));
  // The summary covers the windows measured before the plant failed; the run itself did not finish.
  if (summary.contains("stopped"))
    fail("run stopped: {} (the summary and log cover the windows measured before)", summary["stopped"].get<std::string>());
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  RunConfig& r = a->run;
  CLI::App* cmd = app.add_subcommand(
      "run", "Score a text stream under a power/energy budget, optionally adapting the model online (JSONL log)");
  // --help in groups (CLI11's option_defaults: each option added after takes the group).
  cmd->option_defaults()->group("Data and model");
  add_model_flags(cmd, r.model, a->tokenizer);
  cmd->add_option("--data", r.data, "text stream")->capture_default_str();
  add_window_flags(cmd, r.stream.seq, r.stream.max_tokens);
  add_device_flags(cmd, r.runner, "each window's forward, and with --ttt the adaptation,");
  add_threads_flag(cmd);
  cmd->option_defaults()->group("Output");
  cmd->add_option("--log", r.log, "per-window JSONL log");
  add_output_flags(cmd, a->out);
  cmd->add_option("--compare-windows", r.stream.compare_windows, "windows in the first/last expert-use matrices")
      ->capture_default_str();
  cmd->option_defaults()->group("Routing");
  add_routing_flags(cmd, r.routing);
  cmd->option_defaults()->group("Budget");
  CLI::Option* pw = cmd->add_option("--power-budget-w", r.budget.power_w, "hold the plant's mean power at W");
  add_deprecated_alias(cmd, "--power-budget", pw, r.budget.power_w);
  CLI::Option* ej = cmd->add_option("--energy-budget-j-per-token", r.budget.energy_j_per_token,
                                    "hold the plant's energy per token at J/token");
  add_deprecated_alias(cmd, "--energy-budget", ej, r.budget.energy_j_per_token);
  cmd->add_option("--budget-schedule", r.budget.schedule, "target step changes WINDOW:TARGET,... (W or J/token)");
  cmd->add_option("--control-policy", r.budget.control_policy, "knob the controller moves: cost, top_p, skip, topk, budget")
      ->capture_default_str();
  cmd->add_flag("--no-thermal-guard{false}", r.budget.thermal_guard, "disable the thermal guard");
  cmd->add_flag("--no-ladder{false}", r.budget.ladder, "disable the degradation ladder");
  cmd->add_flag("--allow-infeasible", r.budget.allow_infeasible,
                "run even when the budget is below the plant's floor (its cheapest rung): warn instead of failing");
  cmd->option_defaults()->group("Plant (what the budget is measured on)");
  cmd->add_option("--plant", r.plant.name,
                  "what the window's work runs on: sim (simulated GPU), cuda (Mixtral-shaped expert blocks on the real "
                  "GPU, measured with NVML) or model (the model itself on the GPU, --sim-streams copies of each window "
                  "per step, measured with NVML; needs --device cuda)")->capture_default_str();
  cmd->add_option("--sim-params", r.plant.sim_params, "simulated GPU parameters (JSON)");
  cmd->add_option("--sim-streams", r.plant.streams, "concurrent streams each window stands for")->capture_default_str();
  cmd->add_option("--step-period-s", r.plant.period_s, "seconds between steps (arrival cadence; default 0.02 sim, 1 cuda)");
  cmd->add_option("--idle-s", r.plant.idle_s, "--plant cuda: seconds of idle power measured before any work")
      ->capture_default_str();
  cmd->add_option("--ambient-c", r.plant.ambient_c, "simulated ambient temperature (°C)");
  cmd->option_defaults()->group("Test-time training (TTT)");
  add_ttt_flags(cmd, r.ttt);
  cmd->callback([a] { run_run(*a); });
}

}  // namespace wattmoe::cli
