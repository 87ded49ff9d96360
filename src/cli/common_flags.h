// Flags that several commands share, declared once so every command spells, defaults and documents them the same
// way; each binds straight to the library's option field (the default lives there).
//   --model DIR, --tokenizer SPEC     add_model_flags (default model: cli/defaults.h)
//   --device, --precision, --moe-kernels   add_device_flags → RunnerOptions (model/runner.h)
//   --seq, --max-tokens               add_window_flags
//   --threads N                       add_threads_flag → set_default_pool_threads (core/thread_pool.h)
//   routing (--policy, knobs, costs)  cli/routing_flags.h;  test-time training (--ttt-*)  cli/ttt_flags.h
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "model/runner.h"

namespace wattmoe::cli {

void add_model_flags(CLI::App* cmd, std::string& model, std::string& tokenizer);
// device_help: what --device cuda moves to the GPU for this command.
void add_device_flags(CLI::App* cmd, RunnerOptions& o, const std::string& device_help);
void add_window_flags(CLI::App* cmd, int& seq, int64_t& max_tokens);
// --threads N (1..kMaxThreads): the CPU engine's thread pool size, as WATTMOE_THREADS (which it overrides; the default,
// one per core, lives in core/thread_pool). Applied while the flags are parsed, before the command runs.
void add_threads_flag(CLI::App* cmd);

// Every numeric option of `app` and its subcommands (CLI11 types INT, UINT, FLOAT) refuses a negative value unless
// its name is in `negative_allowed` (e.g. --ambient-c: "--max-tokens: expected a number >= 0, got '-5'"); every
// floating-point one (FLOAT) refuses NaN, and infinity (or a value that overflows to it, 1e999) unless its name is in
// `inf_allowed` (e.g. --budget-j, whose "inf" means no limit): "--duration: expected a number, got 'nan'". Call once,
// after every command is registered.
void refuse_bad_numbers(CLI::App& app, const std::vector<std::string>& inf_allowed,
                        const std::vector<std::string>& negative_allowed);

}  // namespace wattmoe::cli
