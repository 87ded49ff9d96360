#include "cli/ttt_flags.h"

#include "cli/common_flags.h"

namespace wattmoe::cli {

void add_ttt_flags(CLI::App* cmd, TttOptions& t, bool grouped) {
  CLI::Option* ttt = cmd->add_flag("--ttt", t.enabled, "adapt the model online (test-time training)");
  visit_ttt_options(t, TableFlags{cmd, grouped});
  // Every --ttt-* and --lora-* flag does nothing without --ttt: refused rather than ignored ("--ttt-lr requires --ttt").
  for (CLI::Option* o : cmd->get_options([](CLI::Option* o) {
         const std::string& n = o->get_name();
         return n.rfind("--ttt-", 0) == 0 || n.rfind("--lora-", 0) == 0;
       }))
    o->needs(ttt);
}

}  // namespace wattmoe::cli
