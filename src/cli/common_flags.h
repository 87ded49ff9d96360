// Flags that several commands share, declared once so every command spells, defaults and documents them the same
// way; each binds straight to the library's option field (the default lives there).
//   --model DIR, --tokenizer SPEC     add_model_flags (default model: cli/defaults.h)
//   --device, --precision, --moe-kernels, --expert-precision, --no-decode-graphs
//                                     add_device_flags → RunnerOptions (model/runner.h)
//   --seq, --max-tokens               add_window_flags
//   --threads N                       add_threads_flag → set_default_pool_threads (core/thread_pool.h)
//   routing (--policy, knobs, costs)  cli/routing_flags.h;  test-time training (--ttt-*)  cli/ttt_flags.h
//   the options Python shares        TableFlags, visiting the tables of eval/option_table.h
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/error.h"
#include "core/log.h"
#include "eval/option_table.h"
#include "model/runner.h"

namespace wattmoe::cli {

void add_model_flags(CLI::App* cmd, std::string& model, std::string& tokenizer);
// device_help: what --device cuda moves to the GPU for this command.
void add_device_flags(CLI::App* cmd, RunnerOptions& o, const std::string& device_help);
void add_window_flags(CLI::App* cmd, int& seq, int64_t& max_tokens);
// --threads N (1..kMaxThreads): the CPU engine's thread pool size, as WATTMOE_THREADS (which it overrides; the default,
// one per core, lives in core/thread_pool). Applied while the flags are parsed, before the command runs.
void add_threads_flag(CLI::App* cmd);

// One flag vocabulary across commands (issue 19): routing p is --route-top-p (--top-p is generate's sampling p),
// tokens to generate --max-new-tokens, tokens to score --max-tokens, profile's per-call counts --tokens-per-call and
// --max-tokens-per-call, seconds --*-s, budgets with their unit (--power-budget-w, --energy-budget-j-per-token).
// An old name stays as a hidden alias of `now` (an option already added, bound to `field`): given, it sets the same
// field and warns "--top-p is deprecated: use --route-top-p"; given together with `now`, the command is refused.
template <class T>
void add_deprecated_alias(CLI::App* cmd, const std::string& old, CLI::Option* now, T& field) {
  // Option callbacks run once every argument is parsed, so now->count() is known here.
  cmd->add_option(old, field)->group("")->each([old, now](const std::string&) {  // group "": not listed by --help
    if (now->count() > 0) fail("{} is the old name of {}: give one of them", old, now->get_name());
    log_warn("{} is deprecated: use {}", old, now->get_name());
  });
}

// Registers every option an option table visits (eval/option_table.h) as a flag of `cmd`, bound to its field: an
// option, or a switch for a bool field (a negated one sets it false) unless the table gives it a value; its default
// shown where the table says; its old name as a deprecated alias; with `grouped`, in the table's --help section
// (`wattmoe run`). Use: visit_routing_options(r, TableFlags{cmd}).
struct TableFlags {
  CLI::App* cmd;
  bool grouped = false;
  template <class T>
  void operator()(const OptionInfo& i, T& field) const {
    const std::string name(i.flag), help(i.help);
    CLI::Option* o = nullptr;
    if constexpr (std::is_same_v<T, bool>)
      o = i.bool_value ? cmd->add_option(name, field, help)
                       : cmd->add_flag(i.negated ? name + "{false}" : name, field, help);
    else
      o = cmd->add_option(name, field, help);
    if (i.show_default) o->capture_default_str();
    if (grouped && !i.group.empty()) o->group(std::string(i.group));
    if (!i.alias.empty()) add_deprecated_alias(cmd, std::string(i.alias), o, field);
  }
};

// Every numeric option of `app` and its subcommands (CLI11 types INT, UINT, FLOAT) refuses a negative value unless
// its name is in `negative_allowed` (e.g. --ambient-c: "--max-tokens: expected a number >= 0, got '-5'"); every
// floating-point one (FLOAT) refuses NaN, and infinity (or a value that overflows to it, 1e999) unless its name is in
// `inf_allowed` (e.g. --budget-j, whose "inf" means no limit): "--duration: expected a number, got 'nan'". Call once,
// after every command is registered.
void refuse_bad_numbers(CLI::App& app, const std::vector<std::string>& inf_allowed,
                        const std::vector<std::string>& negative_allowed);
// The same with the exceptions the option tables declare (OptionInfo's inf_ok and negative_ok: --budget-j,
// --ambient-c).
void refuse_bad_numbers(CLI::App& app);

}  // namespace wattmoe::cli
