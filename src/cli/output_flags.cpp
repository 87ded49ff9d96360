#include "cli/output_flags.h"

#include <fmt/format.h>

#include "io/atomic_file.h"

namespace wattmoe::cli {

void add_output_flags(CLI::App* cmd, OutputFlags& o, bool summary_file) {
  cmd->add_flag("--json", o.json, "print the full result as JSON on stdout instead of the human summary");
  if (summary_file) cmd->add_option("--summary", o.summary, "also write the full result as JSON to this file");
}

void emit_result(const OutputFlags& o, const Json& j, const std::string& human, int indent) {
  if (!o.summary.empty()) {
    const std::string text = j.dump(indent) + "\n";
    AtomicFile f(o.summary);
    f.write(text.data(), text.size());
    f.commit();
  }
  if (o.json) fmt::print("{}\n", j.dump(indent));
  else fmt::print("{}", human);
}

}  // namespace wattmoe::cli
