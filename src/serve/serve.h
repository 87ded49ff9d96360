// `wattmoe serve` as one call: an Engine (serve/engine.h) over the given model and an HttpServer
// (serve/http_server.h) on host:port, serving until SIGTERM or SIGINT; then it drains (in-flight requests finish,
// new ones get 503) and returns the engine's summary (requests, tokens, energy). The CLI (cli/cmd_serve.cpp) only
// binds flags to ServeConfig and loads the model and tokenizer.
#pragma once
#include <memory>
#include <string>

#include "io/json.h"
#include "model/checkpoint.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "text/tokenizer.h"

namespace wattmoe {

struct ServeConfig {
  EngineConfig engine;
  HttpOptions http;
  std::string port_file;  // written (atomically) with the bound port once the server accepts requests
};

// The checks that need no file: call before loading the model.
void check_serve_config(const ServeConfig& c);

// Blocks SIGTERM, SIGINT and SIGPIPE's default action for the process's threads, serves, and returns the summary
// once a signal has drained the server. Errors (a busy port, a bad option) are thrown before anything is served.
Json serve_until_signal(const ServeConfig& c, const ModelWeights<float>& m, std::shared_ptr<const Tokenizer> tok);

}  // namespace wattmoe
