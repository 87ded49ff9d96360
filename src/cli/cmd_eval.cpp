// wattmoe eval: bits per byte, nats per token, perplexity and expert use of a model on a text file (JSON out).
#include "cli/commands.h"
#include "cli/defaults.h"
#include "cli/moe_kernels_flag.h"
#include "cli/routing_flags.h"
#include "eval/evaluate.h"
#include "model/checkpoint.h"
#include "model/runner.h"

namespace wattmoe::cli {

namespace {

struct EvalArgs {
  std::string model = default_model_dir(), data = "data/kjv.val.txt", tokenizer, device = "cpu";
  std::string precision = "fp32", moe_kernels = "auto";
  int seq = 128, batch = 16, stride = 0;
  int64_t max_tokens = 0;
  RoutingOptions routing;
};

void run_eval(const EvalArgs& a) {
  RunnerOptions where{a.device, a.precision, a.moe_kernels};
  check_runner_options(where);  // before any work: a GPU-less machine fails at once
  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  const TokenStream s = load_token_stream(a.data, *tok, 2);
  const RoutingSetup routing = make_routing(a.routing, m.config, double(a.seq) * a.batch);
  const EvalWindows windows{a.seq, a.batch, a.max_tokens, a.stride};
  const RoutingSpec spec = routing.spec();
  where.routing_not_fused = fused_routing_unsupported(spec, m.config.top_k);
  std::unique_ptr<Runner> run = make_runner(m.config, where);
  run->set_params(m.params.data());
  run->set_routing(spec);
  auto tally = std::make_shared<RoutingEnergyTally>();
  run->set_routing_observer(routing.observer(tally));
  const EvalResult r = evaluate(*run, s, windows);
  const std::string kernels = run->info().moe_kernels;
  Json use = Json::object();
  for (size_t l = 0; l < r.expert_counts.size(); ++l)
    if (!r.expert_counts[l].empty()) use[std::to_string(l)] = r.expert_counts[l];
  Json j{{"model", a.model}, {"data", a.data}, {"tokenizer", tok->describe()}, {"bits_per_byte", r.bits_per_byte()},
         {"nats_per_token", r.nats_per_token()}, {"perplexity", r.perplexity()}, {"tokens", r.tokens},
         {"bytes", r.bytes}, {"seconds", r.seconds}, {"tokens_per_s", r.tokens_per_second()},
         {"experts_per_token", r.experts_per_token}, {"expert_counts", use}, {"seq", a.seq}, {"stride", windows.step()}, {"batch", a.batch}, {"device", a.device},
         {"precision", a.precision}, {"moe_kernels", kernels},
         {"routing", routing.describe()}, {"expert_j_per_token", tally->joules_per_token()}};
  fmt::print("{}\n", j.dump(2));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Bits per byte, perplexity and expert use of a model on a text file");
  cmd->add_option("--model", a->model, "checkpoint directory")->capture_default_str();
  cmd->add_option("--data", a->data, "text file to score")->capture_default_str();
  cmd->add_option("--tokenizer", a->tokenizer, "bytes, or a tokenizer.json (default: the model's, else bytes)");
  cmd->add_option("--seq", a->seq, "window length (windows of seq+1 tokens)")->capture_default_str();
  cmd->add_option("--stride", a->stride,
                  "tokens between window starts, 1 … seq (0: seq, disjoint windows); below seq each window scores only "
                  "its new targets, with at least seq − stride tokens of context (a sliding window)")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "windows per forward pass")->capture_default_str();
  cmd->add_option("--max-tokens", a->max_tokens, "score only the first N tokens (0: all)");
  cmd->add_option("--device", a->device, kDeviceHelp)->capture_default_str();
  add_precision_flag(cmd, a->precision);
  add_moe_kernels_flag(cmd, a->moe_kernels);
  add_routing_flags(cmd, a->routing);
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace wattmoe::cli
