// The nanobind module wattmoe._core (docs/ARCHITECTURE.md, "The Python package"): the engine's library, bound as it is
// — the same functions the command line calls (eval/evaluate.h, eval/budgeted_run.h, serve/engine.h,
// energy/meter.h), so results equal the CLI's. The Pythonic layer (python/wattmoe/*.py) wraps these names; Python
// code should not import _core directly.
//
// Contract: every wattmoe::Error becomes wattmoe.Error (a RuntimeError) with the same message; options arrive as
// dicts whose keys are the command line's flag names without the dashes, '-' written '_' (options.cpp, the one
// place that maps them); results come back as dicts equal to the CLI's JSON (to_python), arrays as NumPy arrays.
// Long calls release the GIL.
#pragma once
#include <nanobind/nanobind.h>

#include "eval/budgeted_run.h"
#include "eval/eval_job.h"
#include "eval/evaluate.h"
#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/runner.h"
#include "serve/engine.h"

namespace wattmoe::py {

namespace nb = nanobind;

// Option dicts -> the library's option structs. Errors (wattmoe::Error) name the key: an unknown one lists the known
// ones; a value of the wrong type or a NaN says what was expected, as the CLI does for its flags.
RoutingOptions routing_options(const nb::dict& d);
RunnerOptions runner_options(const nb::dict& d);
EvalWindows eval_windows(const nb::dict& d);
// `wattmoe run`'s options (plant, budget, stream, log) and, from `ttt` (None: off; a dict, possibly empty: on), its
// test-time training options (the --ttt-* and --lora-* flags without those prefixes).
void apply_run_options(const nb::dict& d, const nb::object& ttt, RunConfig& c);
// Generation's budget, energy and context options (`wattmoe serve`'s flags of the same names: serve/engine.h).
void apply_generate_options(const nb::dict& d, EngineConfig& c);

// A JSON value as Python objects: exactly what json.loads of its text gives (so records equal the CLI's JSONL).
nb::object to_python(const Json& j);

void bind_model(nb::module_& m);
void bind_meter(nb::module_& m);
void bind_tokenizer(nb::module_& m);

}  // namespace wattmoe::py
