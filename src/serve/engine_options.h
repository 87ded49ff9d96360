// The serving engine's options that the command line (`wattmoe serve`) and the Python package (Model.generate)
// share, declared once as an option table (eval/option_table.h says how tables are read): the budget in the
// server's wording, where each step's energy comes from, and the context. The rest of serve's flags (batching,
// memory limits, HTTP) are the server's alone and stay in cli/cmd_serve.cpp.
#pragma once
#include <string_view>

#include "eval/option_table.h"
#include "serve/engine.h"

namespace wattmoe {

template <class V>
void visit_engine_options(EngineConfig& c, V&& v) {
  ServeEnergyOptions& e = c.energy;
  visit_budget_options(c.budget, false, v);
  v(OptionInfo{.flag = "--plant",
               .help = "where each step's energy comes from: sim (the simulated GPU fed the step's routed work, "
                       "labelled simulated), model (the GPU the model runs on, NVML energy counter; needs --device "
                       "cuda) or auto (model on cuda, else sim)",
               .show_default = true}, e.plant);
  v(OptionInfo{.flag = "--sim-params", .help = "simulated GPU parameters (JSON)"}, e.sim_params);
  v(OptionInfo{.flag = "--ambient-c", .help = "simulated ambient temperature (°C)", .negative_ok = true}, e.ambient_c);
  v(OptionInfo{.flag = "--sim-period-s",
               .help = "each simulated step lasts at least this long (0: the step's wall time)", .show_default = true},
    e.sim_period_s);
  v(OptionInfo{.flag = "--bill-idle-s",
               .help = "a gap with no request in flight up to this long is metered and billed with the next step (the "
                       "board's energy while clients turn around); longer idle time is billed to nobody (0: none)",
               .show_default = true},
    e.bill_idle_s);
  v(OptionInfo{.flag = "--control-period-s",
               .help = "step time the controller averages over per update (default 0.02 s sim, 1 s model)"},
    e.control_period_s);
  v(OptionInfo{.flag = "--context", .help = "positions per sequence (0: the model's max_position_embeddings)",
               .show_default = true}, c.limits.context);
}

}  // namespace wattmoe
