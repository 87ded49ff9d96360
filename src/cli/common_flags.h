// Flags that several commands share, declared once so every command spells, defaults and documents them the same
// way; each binds straight to the library's option field (the default lives there).
//   --model DIR, --tokenizer SPEC     add_model_flags (default model: cli/defaults.h)
//   --device, --precision, --moe-kernels   add_device_flags → RunnerOptions (model/runner.h)
//   --seq, --max-tokens               add_window_flags
//   routing (--policy, knobs, costs)  cli/routing_flags.h;  test-time training (--ttt-*)  cli/ttt_flags.h
#pragma once
#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>

#include "model/runner.h"

namespace wattmoe::cli {

void add_model_flags(CLI::App* cmd, std::string& model, std::string& tokenizer);
// device_help: what --device cuda moves to the GPU for this command.
void add_device_flags(CLI::App* cmd, RunnerOptions& o, const std::string& device_help);
void add_window_flags(CLI::App* cmd, int& seq, int64_t& max_tokens);

}  // namespace wattmoe::cli
