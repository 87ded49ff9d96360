// Routing flags shared by the commands that run the model on text (eval, run): which policy, its knobs, and what
// the experts cost (eval/routing_setup.h says what each means). Declared once, in eval/option_table.h
// (visit_routing_options, which the Python package reads too), so every command spells and documents them the same
// way.
#pragma once
#include <CLI/CLI.hpp>

#include "eval/routing_setup.h"

namespace wattmoe::cli {

// grouped: under --help's "Routing" section (run).
void add_routing_flags(CLI::App* cmd, RoutingOptions& a, bool grouped = false);
// --prune-least-used R --calibration FILE: static pruning by calibration use (eval, explain; not `run`, whose
// controller sets the masks itself).
void add_pruning_flags(CLI::App* cmd, RoutingOptions& a);

}  // namespace wattmoe::cli
