// wattmoe explain: per token and MoE layer, the experts a routing policy chose, their router probabilities and costs,
// and which rule dropped each of the others (eval/explain.h; reasons from moe/policy.h's traced selection). A table
// by default, JSON with --json. Runs on the CPU (the reference path).
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/defaults.h"
#include "cli/routing_flags.h"
#include "eval/explain.h"
#include "ops/quant.h"
#include "text/token_stream.h"
#include "model/checkpoint.h"

namespace wattmoe::cli {

namespace {

struct ExplainArgs {
  std::string model = default_model_dir(), tokenizer, text, data, expert_precision = "bf16";
  int64_t max_tokens = 16;
  bool json = false;
  RoutingOptions routing;
};

// Printable form of a token's text: control bytes and quotes escaped, so every row stays on one line.
std::string printable(const std::string& s) {
  std::string o;
  for (unsigned char ch : s) {
    if (ch == '\n') o += "\\n";
    else if (ch == '\t') o += "\\t";
    else if (ch == '\'' || ch == '\\') o += std::string("\\") + char(ch);
    else if (ch < 0x20 || ch == 0x7f) o += fmt::format("\\x{:02x}", ch);
    else o += char(ch);
  }
  return "'" + o + "'";
}

void print_table(const Explanation& x, const RoutingSetup& routing, const Tokenizer& tok, const std::string& tier) {
  fmt::print("routing: {}\n", routing.describe().dump());
  fmt::print("routed experts: {} ({} byte(s) a weight, every cost priced at it)\n", tier,
             ops::expert_precision_bytes(tier));
  fmt::print("{} tokens, {} experts, model top-{}; cost = a_e/n + b_e per token (J, n = {} tokens in the step); "
             "dropped experts: probability and the rule that dropped them\n",
             x.ids.size(), x.experts, x.model_k, x.ids.size());
  for (const ExplainedLayer& l : x.layers) {
    fmt::print("\nlayer {}  (step energy {:.4g} J)  costs:", l.layer, l.step_energy_j);
    std::vector<double> cost(size_t(x.experts), 0.0);
    for (const ExplainedExpert& e : l.tokens.at(0)) cost[size_t(e.expert)] = e.cost_j;
    for (int e = 0; e < x.experts; ++e) fmt::print(" e{} {:.3g}", e, cost[size_t(e)]);
    fmt::print("\n{:>4}  {:<8}  {:<34}  {}\n", "pos", "token", "selected (expert p)", "dropped (expert p rule)");
    for (size_t t = 0; t < l.tokens.size(); ++t) {
      std::string sel, drop;
      for (const ExplainedExpert& e : l.tokens[t]) {
        if (e.selected())
          sel += fmt::format("{}e{} {:.3f}{}", sel.empty() ? "" : ", ", e.expert, e.prob,
                             e.reason == RouteReason::kFloor ? " (k_min floor)" : "");
        else
          drop += fmt::format("{}e{} {:.3f} {}", drop.empty() ? "" : ", ", e.expert, e.prob,
                              route_reason_name(e.reason));
      }
      fmt::print("{:>4}  {:<8}  {:<34}  {}\n", t, printable(tok.decode(std::span(&x.ids[t], 1))), sel, drop);
    }
  }
}

void run_explain(const ExplainArgs& a) {
  WATTMOE_REQUIRE(a.text.empty() != a.data.empty(), "explain: give exactly one of --text and --data");
  WATTMOE_REQUIRE(a.max_tokens >= 1, "--max-tokens {}: expected at least 1", a.max_tokens);
  ops::parse_expert_precision(a.expert_precision);  // a bad tier fails before the model loads
  ModelWeights<float> m = load_model<float>(a.model);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  std::vector<int32_t> ids = a.data.empty() ? tok->encode(a.text) : load_token_stream(a.data, *tok, 1).tokens;
  WATTMOE_REQUIRE(!ids.empty(), "explain: --text has no tokens");
  if (int64_t(ids.size()) > a.max_tokens) ids.resize(size_t(a.max_tokens));
  const RoutingSetup routing = make_routing(a.routing, m.config, double(ids.size()), a.expert_precision);
  RunnerOptions where;  // the CPU runner, the reference
  where.expert_precision = a.expert_precision;
  std::unique_ptr<Runner> run = make_runner(m.config, where);
  run->set_params(m.params.data());
  run->set_routing(routing.spec());
  const Explanation x = explain_routing(*run, ids, routing);
  if (a.json) {
    Json j = explanation_json(x, routing, *tok);
    j["expert_precision"] = a.expert_precision;
    fmt::print("{}\n", j.dump(2));
  } else {
    print_table(x, routing, *tok, a.expert_precision);
  }
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto a = std::make_shared<ExplainArgs>();
  CLI::App* cmd = app.add_subcommand(
      "explain",
      "Per token and MoE layer: the experts a routing policy chose, their probabilities and costs, and the rule that "
      "dropped each other expert (beta, top_p, budget, mask, k_max, k_min floor, cost). Runs on the CPU (the "
      "reference path); the experts' precision tier (--expert-precision) prices their costs and drops none");
  add_model_flags(cmd, a->model, a->tokenizer);
  cmd->add_option("--text", a->text, "the text to explain");
  cmd->add_option("--data", a->data, "a text file to explain (its first --max-tokens tokens)");
  cmd->add_option("--max-tokens", a->max_tokens, "explain at most the first N tokens (one forward; at most the "
                                                 "model's context)")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "JSON instead of the table");
  cmd->add_option("--expert-precision", a->expert_precision,
                  "the routed experts' tier: bf16, fp8 or int8 (quantised as eval and run do); every expert's cost "
                  "is priced at its weight bytes, and a uniform tier drops no expert")
      ->capture_default_str();
  add_threads_flag(cmd);
  add_routing_flags(cmd, a->routing);
  add_pruning_flags(cmd, a->routing);
  cmd->callback([a] { run_explain(*a); });
}

}  // namespace wattmoe::cli
