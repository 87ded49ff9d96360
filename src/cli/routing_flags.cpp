#include "cli/routing_flags.h"

#include "cli/common_flags.h"

namespace wattmoe::cli {

void add_routing_flags(CLI::App* cmd, RoutingOptions& a) {
  cmd->add_option("--policy", a.policy, "routing policy: topk, cost, top_p, skip, budget, mask")->capture_default_str();
  cmd->add_option("--lambda", a.lambda, "cost: price weight λ ≥ 0 (logit units)")->capture_default_str();
  CLI::Option* p = cmd->add_option("--route-top-p", a.top_p, "top_p: cumulative router probability in (0, 1]")
                       ->capture_default_str();
  add_deprecated_alias(cmd, "--top-p", p, a.top_p);
  cmd->add_option("--beta", a.beta, "skip: drop experts below β × the first's probability, β in [0, 1]")
      ->capture_default_str();
  cmd->add_option("--k-min", a.k_min, "fewest experts per token (top_p, skip, budget)")->capture_default_str();
  cmd->add_option("--k-max", a.k_max, "most experts per token (0: the model's top-k)")->capture_default_str();
  cmd->add_option("--budget-j", a.budget_j, "budget: joules per layer-step (inf: no limit)");
  cmd->add_option("--mask", a.mask, "experts pruned in every layer, comma-separated ids (e.g. 3,5)");
  cmd->add_option("--reuse-min-tokens", a.reuse_min_tokens, "cost: step-aware re-pricing threshold (0: off)")
      ->capture_default_str();
  cmd->add_option("--costs", a.costs, "expert costs: 'analytic' or a cost table JSON from wattmoe profile")
      ->capture_default_str();
  cmd->add_option("--expert-shape", a.expert_shape,
                  "analytic costs as if each expert were HxI (e.g. 4096x14336); default: the model's own shape");
}

void add_pruning_flags(CLI::App* cmd, RoutingOptions& a) {
  cmd->add_option("--prune-least-used", a.prune_least_used,
                  "static pruning: mask the R experts of each MoE layer that --calibration used least (0: off)")
      ->capture_default_str();
  cmd->add_option("--calibration", a.calibration,
                  "a wattmoe eval JSON (its expert_counts) of the calibration text, for --prune-least-used");
}

}  // namespace wattmoe::cli
