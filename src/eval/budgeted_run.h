// The budgeted run behind `wattmoe run`, as library code: a model reads a text stream window by window and scores
// each window (prequential: before any adaptation on it); the window's routed work goes to a plant (plant/plant.h:
// the simulated GPU, or the real one measured by NVML) whose power or energy per token a Controller (control/) holds
// at a budget by moving the routing knob; optionally the model adapts online (adapt/adapter.h). Everything it decides
// is logged per window as JSONL; the result is a summary JSON.
//
// The options below are plain data with their defaults here — the only place they are written (the command line
// binds its flags to these fields). Errors name the option as the command line spells it.
#pragma once
#include <cmath>
#include <functional>
#include <string>

#include "adapt/adapter.h"
#include "adapt/stream.h"
#include "eval/budget_control.h"
#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "model/runner.h"
#include "text/token_stream.h"

namespace wattmoe {

struct RunPlantOptions {
  static constexpr double kMaxStreams = 1e9, kMaxStepPeriodS = 3600;  // bounds of --sim-streams, --step-period-s
  std::string name = "sim";  // sim | cuda | model (plant/plant.h)
  std::string sim_params;    // simulated GPU parameters (JSON file); empty: the defaults
  double streams = 16;       // concurrent streams each window stands for
  double period_s = NAN;     // seconds between steps; NaN: default_step_period(name)
  double ambient_c = NAN;    // simulated ambient temperature; NaN: the sim parameters'
  double idle_s = 2;         // cuda: idle power measured for this long before any work
};

// Test-time adaptation. Numeric knobs live in `adapter` (adapt/adapter.h), whose run defaults are AdapterConfig's
// except the source guard, which a run keeps on (every 4 adapted windows); the spec strings are parsed at start.
struct TttOptions {
  bool enabled = false;
  std::string groups = "router,norms";  // adapt/param_groups.h
  std::string optimizer = "sgd";        // sgd | adamw
  std::string triggers = "always";      // always, every, drift, power, thermal, complexity, adaptive (any-of)
  int every = 0;                        // the 'every' trigger's interval in windows
  double power_above_w = NAN;           // the 'power' trigger's threshold
  double complexity = 0;                // the 'complexity' trigger's factor over the loss EMA
  double entropy_gate = 0;              // nats; 0: the default gate (0.4·ln V)
  AdapterConfig adapter = run_adapter_defaults();
  static AdapterConfig run_adapter_defaults();
};

struct RunConfig {
  std::string model, data;  // what the summary names
  StreamOptions stream;
  RoutingOptions routing;
  BudgetOptions budget;
  RunPlantOptions plant;
  TttOptions ttt;
  RunnerOptions runner;
  std::string log;  // per-window JSONL path; empty: none
};

// The checks that need no file (flags' ranges and combinations, the device and the plant are available): call it
// before loading anything, so a bad command fails at once.
void check_run_config(const RunConfig& c);

// Each window's record as it is logged (one JSONL line of --log, the same object), for a caller that consumes the
// run as it goes (the Python package's model.run). Returning false ends the run after this window, as a signal does
// but without "interrupted" in the summary. Called on the thread that runs run_budgeted.
using WindowRecordFn = std::function<bool(const Json& record)>;

// Runs it (check_run_config first) and returns the summary. SIGINT/SIGTERM end it after the current window
// ("interrupted" in the summary); a plant whose step fails (a sensor dying mid-run) ends it after the windows it
// measured ("stopped": the error).
Json run_budgeted(const RunConfig& c, const ModelWeights<float>& m, const TokenStream& s,
                  const WindowRecordFn& on_record = {});

// The small grammars of the run flags (fuzzed: fuzz/flags_fuzz.cpp). Errors name the flag.
// --budget-schedule "0:400,200:300" -> {(0, 400), (200, 300)}: windows ascending, targets finite and > 0.
std::vector<std::pair<int64_t, double>> parse_budget_schedule(const std::string& s);
TriggerConfig parse_triggers(const TttOptions& t);  // --ttt-trigger "drift,power" with the triggers' own flags
// The adapter's full config from the --ttt-* options: the numeric knobs as given, the parsed specs, the energy
// objective's costs (routing's, at tokens_per_step). Shared by the run and the server (serve/engine.h).
AdapterConfig adapter_config(const TttOptions& t, const RoutingSetup& routing, double tokens_per_step);

}  // namespace wattmoe
