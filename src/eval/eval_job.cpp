#include "eval/eval_job.h"

#include <memory>

#include "model/runner.h"

namespace wattmoe {

Json expert_counts_json(const std::vector<std::vector<int64_t>>& counts) {
  Json j = Json::object();
  for (size_t l = 0; l < counts.size(); ++l)
    if (!counts[l].empty()) j[std::to_string(l)] = counts[l];
  return j;
}

EvalJobReport run_eval_job(const ModelWeights<float>& m, const std::string& model_dir, const Tokenizer& tok,
                           const TokenStream& s, const std::string& data, const RunnerOptions& where,
                           const EvalWindows& windows, const RoutingOptions& options, const EvalProgress& progress) {
  const RoutingSetup routing =
      make_routing(options, m.config, double(windows.seq) * windows.batch, where.expert_precision);
  std::unique_ptr<Runner> run = make_runner(m.config, where);
  run->set_params(m.params.data());
  run->set_routing(routing.spec());
  auto tally = std::make_shared<RoutingEnergyTally>();
  run->set_routing_observer(routing.observer(tally));
  EvalJobReport out;
  const EvalResult& r = out.result = evaluate(*run, s, windows, progress);
  out.json = Json{{"schema", "wattmoe.eval/1"}, {"model", model_dir}, {"data", data}, {"tokenizer", tok.describe()},
                  {"bits_per_byte", r.bits_per_byte()}, {"nats_per_token", r.nats_per_token()},
                  {"perplexity", r.perplexity()}, {"tokens", r.tokens}, {"bytes", r.bytes}, {"seconds", r.seconds},
                  {"tokens_per_s", r.tokens_per_second()}, {"experts_per_token", r.experts_per_token},
                  {"expert_counts", expert_counts_json(r.expert_counts)}, {"seq", windows.seq},
                  {"stride", windows.step()}, {"batch", windows.batch}, {"device", where.device},
                  {"precision", where.precision}, {"moe_kernels", run->info().moe_kernels},
                  {"expert_precision", where.expert_precision},
                  {"routing", routing.describe()}, {"expert_j_per_token", tally->joules_per_token()}};
  out.policy = policy_text(routing.policy->name(), routing.knobs, m.config.top_k);
  return out;
}

}  // namespace wattmoe
