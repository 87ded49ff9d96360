// HttpServer: the HTTP face of an Engine (serve/engine.h), on cpp-httplib (Debian's libcpp-httplib-dev; no parser
// of our own). Endpoints (docs/serve.md):
//   POST /v1/completions, POST /v1/chat/completions   OpenAI's, streaming by server-sent events with "stream": true
//   GET  /v1/models, GET /health, GET /metrics (Prometheus text), GET/PUT /v1/budget
// Every error is a JSON body {"error": {...}} with a 4xx/5xx status (serve/api.h): bad JSON, wrong types, unknown
// model, a prompt as long as the context, max_tokens < 1, a body over max_body_bytes (413); a full queue or memory
// pressure 429 with Retry-After; a draining server 503. A streaming client that goes away cancels its request at the
// next step boundary; the others are not affected.
//
// Threads: httplib's pool of `threads` workers (one per open connection); each generation request waits in its
// worker for its Job, so the pool holds max_batch + max_queue requests plus a reserve for the other endpoints.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "serve/engine.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace wattmoe {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (start() returns it)
  size_t max_body_bytes = 1 << 20;      // larger request bodies get 413
  int threads = 0;                      // 0: max_batch + max_queue + 8
  double drain_timeout_s = 30;          // shutdown: how long in-flight requests may take before they are cancelled
  int keep_alive_s = 5;                 // idle keep-alive connections close after this long
};

void check_http_options(const HttpOptions& o);

class HttpServer {
 public:
  HttpServer(Engine& engine, HttpOptions o);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (Error naming them when it cannot) and serves on a thread of its own. Returns the port.
  int start();
  // SIGTERM's path: the engine refuses new requests (503), in-flight ones finish (up to drain_timeout_s, then they
  // are cancelled), every response is written, then the listener stops. Idempotent.
  void shutdown();
  // True while the listener runs; false once it stopped (shutdown, or an accept failure).
  bool running() const;

 private:
  void routes();
  void generate(const httplib::Request& req, httplib::Response& res, bool chat);
  Engine& engine_;
  HttpOptions opt_;
  std::unique_ptr<httplib::Server> svr_;
  std::thread thread_;
  std::atomic<int> in_flight_{0};  // generation responses not completely written yet
  std::atomic<uint64_t> next_id_{0};
  std::atomic<bool> listening_{false};
  bool shut_ = false;
  int port_ = 0;
};

}  // namespace wattmoe
