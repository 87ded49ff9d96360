// wattmoe run: a model reads a text stream window by window under a power or energy budget, optionally adapting
// online — the library's budgeted run (eval/budgeted_run.h says what it does). This file only maps flags to its
// options (eval/option_table.h declares those it shares with Python) and hands back the summary
// (cli/output_flags.h: the verdict and a few lines, or --json / --summary).
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
  // --help in groups: the options of eval/option_table.h (which Python reads too) carry theirs (TableFlags's
  // `grouped`); the command line's own take CLI11's option_defaults group (each option added after takes it).
  const TableFlags flags{cmd, true};
  cmd->option_defaults()->group("Data and model");
  add_model_flags(cmd, r.model, a->tokenizer);
  cmd->add_option("--data", r.data, "text stream")->capture_default_str();
  visit_window_options(r.stream.seq, r.stream.max_tokens, flags);
  add_device_flags(cmd, r.runner, "each window's forward, and with --ttt the adaptation,");
  add_threads_flag(cmd);
  visit_run_output_options(r, flags);  // --log, --compare-windows (Output)
  cmd->option_defaults()->group("Output");
  add_output_flags(cmd, a->out);
  add_routing_flags(cmd, r.routing, true);
  add_pruning_flags(cmd, r.routing);  // static pruning by calibration use (no budget: check_run_config)
  visit_budget_options(r.budget, true, flags);
  visit_plant_options(r.plant, flags);
  cmd->option_defaults()->group("Test-time training (TTT)");
  add_ttt_flags(cmd, r.ttt, true);
  cmd->callback([a] { run_run(*a); });
}

}  // namespace wattmoe::cli
