// The OpenAI-compatible wire format of `wattmoe serve` (docs/serve.md): request bodies of /v1/completions and
// /v1/chat/completions parsed into GenParams (serve/job.h) with every field checked, and the responses, stream chunks
// and errors built from a finished or running Job. Pure functions of their inputs (no sockets), so they are tested
// alone (tests/serve/api_test.cpp).
//
// Every problem is an ApiError: the HTTP status, OpenAI's error type and code, the field (`param`) and a message that
// names the field and says what was expected — rendered as {"error": {"message", "type", "param", "code"}}.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "eval/routing_setup.h"
#include "io/json.h"
#include "serve/job.h"
#include "serve/metrics.h"
#include "text/tokenizer.h"

namespace wattmoe {

class Engine;
struct BudgetUpdate;

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the field, "" when none
  std::string code;   // e.g. "model_not_found", "context_length_exceeded"; "" when none
};
Json error_json(const ApiError& e);
[[noreturn]] void api_fail(int status, const std::string& param, const std::string& message,
                           const std::string& code = "");

// What a request asks for. Defaults: max_tokens 16 (completions) or the rest of the context (chat), temperature 1,
// top_p 1, a seed drawn by the server when none is given (reported back), no stop strings (chat adds kChatStop).
struct ParsedRequest {
  GenParams params;
  bool chat = false, stream = false, include_usage = false;
  bool seed_given = false;
};

// What the parser needs from the server (the Engine gives it; tests make their own).
struct ApiContext {
  std::string model_id;
  const Tokenizer* tokenizer = nullptr;
  int context = 0;  // positions per sequence: the prompt must be shorter
  bool budget_active = false;
  // Builds the request's own routing from its `routing` fields over the server's options (Error names the knob).
  std::function<RoutingSpec(const Json& routing)> routing;
  std::function<uint64_t()> draw_seed;  // a seed for requests that give none
};
ApiContext api_context(const Engine& e);

// Routing fields (policy, k_min, k_max, top_p, lambda, beta, budget_j, reuse_min_tokens, mask: the routing flags'
// names) over `base`; ApiError naming prefix + the field.
RoutingOptions routing_options_from_json(const Json& r, RoutingOptions base, const std::string& prefix);

// Parses and checks a request body. Throws ApiError.
ParsedRequest parse_request(const std::string& body, bool chat, const ApiContext& ctx);

// PUT /v1/budget's body (power_w, energy_j_per_token: a number, 0 or null for none; control_policy; thermal_guard;
// ladder; routing: routing fields over `routing`) → a BudgetUpdate (serve/engine.h) holding only the fields given.
// Throws ApiError naming the field; the Engine checks the values (set_budget).
BudgetUpdate parse_budget_update(const std::string& body, const RoutingOptions& routing);

// Bodies. id: "cmpl-..." or "chatcmpl-..."; created: Unix seconds; source: "simulated" or "measured".
Json usage_json(const JobUsage& u, const std::string& source);
Json response_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                   const std::string& text, const std::string& finish_reason, const JobUsage& u,
                   const std::string& source);
// One server-sent event's data for a piece of text (finish_reason "" while running); the first chat chunk carries the
// role. With a finish reason, usage is attached to the chunk (always, as an extension); include_usage adds the
// separate usage chunk OpenAI sends (choices empty) — usage_chunk_json.
Json chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                const std::string& text, const std::string& finish_reason, bool first);
Json usage_chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const std::string& model,
                      const JobUsage& u, const std::string& source);

// GET /health's body: status ("ok", or "draining" while shutting down: answered with 503), model, running and queued
// requests, the energy source, memory_pressure (0 none, 1 near capacity: batch halved, 2 refusing new requests) and
// test-time training's state, ttt: {"enabled": false} or {"enabled": true, "queued", "windows", "adapted", "steps",
// "resets", "dropped", "seconds", "energy_j", "distance"} (the wattmoe_ttt_* metrics' values).
Json health_json(const ServeStats& st);

// JSON text of j with invalid UTF-8 (a byte model may emit any byte) replaced by U+FFFD.
std::string dump_json(const Json& j);

}  // namespace wattmoe
