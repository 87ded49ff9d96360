// wattmoe: the command-line entry point. One line of error text and a non-zero exit on bad input.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "core/error.h"
#include "core/stop_signal.h"

int main(int argc, char** argv) {
  CLI::App app{"wattmoe: run Mixture-of-Experts language models inside a power, energy and thermal budget"};
  app.require_subcommand(1);
  wattmoe::cli::add_info_command(app);
  wattmoe::cli::add_forward_command(app);
  wattmoe::cli::add_train_command(app);
  wattmoe::cli::add_eval_command(app);
  wattmoe::cli::add_generate_command(app);
  wattmoe::cli::add_data_command(app);
  wattmoe::cli::add_telemetry_command(app);
  wattmoe::cli::add_profile_command(app);
  wattmoe::cli::add_run_command(app);
  wattmoe::cli::add_serve_command(app);
  wattmoe::cli::refuse_non_finite_numbers(app, {"--budget-j"});  // NaN nowhere; inf only where it means "no limit"
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // A bad flag is reported like every other error: one line, naming the flag and what was expected.
    std::fprintf(stderr, "wattmoe: error: %s\n", e.what());
    return e.get_exit_code();
  } catch (const wattmoe::Error& e) {
    std::fprintf(stderr, "wattmoe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattmoe: error: %s\n", e.what());
    return 1;
  }
  // Every write checked, stdout included: a full disk or a closed pipe is an error, not exit 0 with lost output.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "wattmoe: error: stdout: write failed (%s)\n", std::strerror(errno));
    return 1;
  }
  // A job stopped by SIGINT/SIGTERM wrote its checkpoint, logs and summary, and still did not finish.
  if (const int sig = wattmoe::stop_signal_received()) return 128 + sig;
  return 0;
}
