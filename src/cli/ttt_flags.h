// The test-time training flags of `wattmoe run` (--ttt and --ttt-*, --lora-*), bound to TttOptions
// (eval/budgeted_run.h), where their defaults live; declared in eval/option_table.h (visit_ttt_options). Every
// --ttt-* and --lora-* flag needs --ttt: given without it, the command is refused ("--ttt-lr requires --ttt") instead
// of running without adaptation.
#pragma once
#include <CLI/CLI.hpp>

#include "eval/budgeted_run.h"

namespace wattmoe::cli {

// grouped: the --ttt-*/--lora-* flags under the table's --help section.
void add_ttt_flags(CLI::App* cmd, TttOptions& t, bool grouped = false);

}  // namespace wattmoe::cli
