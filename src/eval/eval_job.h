// `wattmoe eval`'s whole job on a loaded model, for the command line (cli/cmd_eval.cpp) and the Python package
// (python/src/model.cpp) alike: the routing from its options, a runner where asked, the stream's windows scored
// (evaluate.h), and the JSON document (schema wattmoe.eval/1) both hand out, with a one-phrase description of the
// policy for a human line.
#pragma once
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "eval/routing_setup.h"
#include "io/json.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"

namespace wattmoe {

struct EvalJobReport {
  EvalResult result;
  Json json;           // schema wattmoe.eval/1
  std::string policy;  // e.g. "skip β=0.7" (policy_text)
};

// model_dir and data name the model and text in the JSON (data: the stream's path, or what the caller calls it).
EvalJobReport run_eval_job(const ModelWeights<float>& m, const std::string& model_dir, const Tokenizer& tok,
                           const TokenStream& s, const std::string& data, const RunnerOptions& where,
                           const EvalWindows& windows, const RoutingOptions& routing,
                           const EvalProgress& progress = nullptr);

// Per-layer (token, expert) counts as JSON: {"layer": [count per expert]}, dense layers left out.
Json expert_counts_json(const std::vector<std::vector<int64_t>>& counts);

}  // namespace wattmoe
