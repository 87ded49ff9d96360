// Each subcommand lives in its own file and registers itself on the app with add_<name>_command.
// The callback it installs runs the command; errors are thrown as wattmoe::Error and reported by main.
#pragma once
#include <CLI/CLI.hpp>

namespace wattmoe::cli {

void add_info_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_data_tokenizer_command(CLI::App* data);  // `wattmoe data tokenizer`, under add_data_command's `data`
void add_telemetry_command(CLI::App& app);
void add_profile_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_explain_command(CLI::App& app);

}  // namespace wattmoe::cli
