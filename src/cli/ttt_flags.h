// The test-time training flags of `wattmoe run` (--ttt and --ttt-*, --lora-*), bound to TttOptions
// (eval/budgeted_run.h), where their defaults live.
#pragma once
#include <CLI/CLI.hpp>

#include "eval/budgeted_run.h"

namespace wattmoe::cli {

void add_ttt_flags(CLI::App* cmd, TttOptions& t);

}  // namespace wattmoe::cli
