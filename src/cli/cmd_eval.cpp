// wattmoe eval: bits per byte, nats per token, perplexity and expert use of a model on a text file: a verdict line
// ("bits/byte 1.8740 on 12,345 tokens of FILE (topk k=2: 2.00 experts/token)") or, with --json, the JSON
// (schema wattmoe.eval/1). Progress with an ETA on stderr once the job has run 2 s.
#include "cli/commands.h"
#include "cli/defaults.h"
#include "cli/common_flags.h"
#include "cli/output_flags.h"
#include "cli/routing_flags.h"
#include "core/log.h"
#include "eval/run_report.h"
#include "eval/eval_job.h"
#include "model/checkpoint.h"
#include "model/runner.h"

namespace wattmoe::cli {

namespace {

struct EvalArgs {
  std::string model = default_model_dir(), data = "data/kjv.val.txt", tokenizer;
  RunnerOptions runner;
  EvalWindows windows;
  RoutingOptions routing;
  OutputFlags out;
};

// Every 2 s after the first 2 s (a short job prints nothing): windows done, rate and the time left.
EvalProgress eval_progress() {
  auto last = std::make_shared<double>(0);
  return [last](int64_t done, int64_t total, double seconds) {
    if (seconds < *last + 2 || done == total) return;
    *last = seconds;
    log_info("eval: {}/{} windows ({:.0f}%), {:.1f} s, ETA {:.0f} s", thousands(done), thousands(total),
             100.0 * double(done) / double(total), seconds, seconds * double(total - done) / double(done));
  };
}

void run_eval(const EvalArgs& a) {
  RunnerOptions where = a.runner;
  check_runner_options(where);  // before any work: a GPU-less machine fails at once
  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  const TokenStream s = load_token_stream(a.data, *tok, 2);
  const EvalWindows& windows = a.windows;
  const EvalJobReport job = run_eval_job(m, a.model, *tok, s, a.data, where, windows, a.routing, eval_progress());
  const EvalResult& r = job.result;
  const std::string human = fmt::format(
      "bits/byte {:.4f} on {} tokens of {} ({}: {:.2f} experts/token)\n"
      "  {:.4f} nats/token, perplexity {:.3f}, {:.1f} s at {} tokens/s on {} ({})\n",
      r.bits_per_byte(), thousands(r.tokens), a.data, job.policy,
      r.experts_per_token, r.nats_per_token(), r.perplexity(), r.seconds, thousands(int64_t(r.tokens_per_second())),
      where.device, where.precision);
  emit_result(a.out, job.json, human);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Bits per byte, perplexity and expert use of a model on a text file");
  add_model_flags(cmd, a->model, a->tokenizer);
  cmd->add_option("--data", a->data, "text file to score")->capture_default_str();
  visit_eval_window_options(a->windows, TableFlags{cmd});  // eval/option_table.h
  add_device_flags(cmd, a->runner, "the model");
  add_threads_flag(cmd);
  add_routing_flags(cmd, a->routing);
  add_pruning_flags(cmd, a->routing);
  add_output_flags(cmd, a->out);
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace wattmoe::cli
