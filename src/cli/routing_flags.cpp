#include "cli/routing_flags.h"

#include "cli/common_flags.h"

namespace wattmoe::cli {

void add_routing_flags(CLI::App* cmd, RoutingOptions& a, bool grouped) {
  visit_routing_options(a, TableFlags{cmd, grouped});
}

void add_pruning_flags(CLI::App* cmd, RoutingOptions& a) {
  cmd->add_option("--prune-least-used", a.prune_least_used,
                  "static pruning: mask the R experts of each MoE layer that --calibration used least (0: off)")
      ->capture_default_str();
  cmd->add_option("--calibration", a.calibration,
                  "a wattmoe eval JSON (its expert_counts) of the calibration text, for --prune-least-used");
}

}  // namespace wattmoe::cli
