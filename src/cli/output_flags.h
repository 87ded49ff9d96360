// How a command hands back its result, the same for every command (eval, run, train, info, telemetry, profile,
// data build): a short human summary on stdout whose first line is the verdict (what a person asks first), or with
// --json the full JSON document (its "schema" field names the format, "wattmoe.<command>/<version>"), and with
// --summary FILE the JSON also written to FILE (atomically) whatever stdout shows.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "io/json.h"

namespace wattmoe::cli {

struct OutputFlags {
  bool json = false;
  std::string summary;  // empty: no file
};

// --json, and --summary FILE when `summary_file`.
void add_output_flags(CLI::App* cmd, OutputFlags& o, bool summary_file = true);

// Writes `j` to --summary (if given), then prints `j` (--json; indent as Json::dump: -1 one line) or `human` on
// stdout.
void emit_result(const OutputFlags& o, const Json& j, const std::string& human, int indent = 2);

}  // namespace wattmoe::cli
