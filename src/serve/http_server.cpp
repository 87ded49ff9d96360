#include "serve/http_server.h"

#include <httplib.h>

#include <chrono>
#include <ctime>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "serve/api.h"

namespace wattmoe {

void check_http_options(const HttpOptions& o) {
  WATTMOE_REQUIRE(!o.host.empty(), "--host: expected an address to listen on (e.g. 127.0.0.1)");
  WATTMOE_REQUIRE(o.port >= 0 && o.port <= 65535, "--port {}: expected 0 (any free port) to 65535", o.port);
  WATTMOE_REQUIRE(o.max_body_bytes >= 1024 && o.max_body_bytes <= (size_t(1) << 30),
                  "--max-body-bytes {}: expected 1024 to 1073741824", o.max_body_bytes);
  WATTMOE_REQUIRE(o.threads >= 0 && o.threads <= 65536, "--http-threads {}: expected 0 (automatic) to 65536", o.threads);
  WATTMOE_REQUIRE(o.drain_timeout_s >= 0 && std::isfinite(o.drain_timeout_s),
                  "--drain-timeout-s must be >= 0 seconds, got {}", o.drain_timeout_s);
  WATTMOE_REQUIRE(o.keep_alive_s >= 1 && o.keep_alive_s <= 3600, "--keep-alive-s {}: expected 1 to 3600", o.keep_alive_s);
}

namespace {

void send_json(httplib::Response& res, int status, const Json& j) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_json(e)); }

ApiError make_error(int status, const std::string& message, const std::string& type, const std::string& code = "") {
  ApiError e;
  e.status = status, e.message = message, e.type = type, e.code = code;
  return e;
}

}  // namespace

HttpServer::HttpServer(Engine& engine, HttpOptions o) : engine_(engine), opt_(std::move(o)) {
  check_http_options(opt_);
  svr_ = std::make_unique<httplib::Server>();
  routes();
}

HttpServer::~HttpServer() {
  if (thread_.joinable()) {
    svr_->stop();
    thread_.join();
  }
}

bool HttpServer::running() const { return listening_.load(); }

int HttpServer::start() {
  const bool any = opt_.port == 0;
  port_ = any ? svr_->bind_to_any_port(opt_.host) : (svr_->bind_to_port(opt_.host, opt_.port) ? opt_.port : -1);
  WATTMOE_REQUIRE(port_ > 0, "--host {} --port {}: cannot listen there (the port is in use, or the address is not "
                             "this machine's)", opt_.host, opt_.port);
  listening_ = true;
  thread_ = std::thread([this] {
    svr_->listen_after_bind();
    listening_ = false;
  });
  return port_;
}

void HttpServer::shutdown() {
  if (shut_) return;
  shut_ = true;
  engine_.drain();
  log_info("serve: draining: new requests get 503, in-flight ones finish (up to {} s)", opt_.drain_timeout_s);
  if (!engine_.wait_idle(opt_.drain_timeout_s)) {
    log_warn("serve: requests still running after {} s: cancelling them", opt_.drain_timeout_s);
    engine_.cancel_all();
    engine_.wait_idle(60);
  }
  // Every response written (a stream's last event included) before the listener stops, which would cut them short.
  Timer t;
  while (in_flight_.load() > 0 && t.seconds() < 10) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (in_flight_.load() > 0) log_warn("serve: {} responses not completely written after 10 s", in_flight_.load());
  svr_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::routes() {
  httplib::Server& s = *svr_;
  const int threads = opt_.threads > 0 ? opt_.threads
                                       : engine_.config().limits.max_batch + engine_.config().limits.max_queue + 8;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  s.set_payload_max_length(opt_.max_body_bytes);
  s.set_keep_alive_timeout(opt_.keep_alive_s);
  s.set_keep_alive_max_count(1000);
  s.set_tcp_nodelay(true);

  // Statuses httplib sets itself (413 body too large, 404 no route, 400 unreadable request) get a JSON body too.
  const size_t max_body = opt_.max_body_bytes;
  s.set_error_handler([this, max_body](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // ours, already JSON
    std::string msg;
    if (res.status == 413) msg = fmt::format("the request body is larger than {} bytes", max_body);
    else if (res.status == 404) msg = fmt::format("no such endpoint: {} {}", req.method, req.path);
    else msg = fmt::format("the request could not be read (HTTP {})", res.status);
    engine_.note_rejected(res.status == 413 ? "body_too_large" : res.status == 404 ? "no_endpoint" : "bad_request");
    send_json(res, res.status, error_json(make_error(res.status, msg, "invalid_request_error")));
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log_warn("serve: handler failed: {}", what);
    send_json(res, 500, error_json(make_error(500, "internal error: " + what, "server_error")));
  });
  s.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    log_debug("serve: {} {} -> {}", req.method, req.path, res.status);
  });

  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const ServeStats st = engine_.stats();
    send_json(res, st.draining ? 503 : 200, health_json(st));
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const Json m{{"id", engine_.config().model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "wattmoe"},
                 {"context_length", engine_.context()}};
    send_json(res, 200, Json{{"object", "list"}, {"data", Json::array({m})}});
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(prometheus_text(engine_.stats()), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/v1/budget", [this](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, engine_.budget_json());
  });
  s.Put("/v1/budget", [this](const httplib::Request& req, httplib::Response& res) {
    try {
      engine_.set_budget(parse_budget_update(req.body, engine_.routing_options()));
    } catch (const ApiError& e) {
      return send_error(res, e);
    } catch (const Error& e) {
      return send_error(res, make_error(400, e.what(), "invalid_request_error"));
    }
    send_json(res, 200, engine_.budget_json());
  });
  s.Post("/v1/completions",
         [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, false); });
  s.Post("/v1/chat/completions",
         [this](const httplib::Request& req, httplib::Response& res) { generate(req, res, true); });
}

void HttpServer::generate(const httplib::Request& req, httplib::Response& res, bool chat) {
  ParsedRequest pr;
  try {
    pr = parse_request(req.body, chat, api_context(engine_));
  } catch (const ApiError& e) {
    engine_.note_rejected(e.code == "model_not_found" ? "unknown_model" : "bad_request");
    return send_error(res, e);
  }
  auto job = std::make_shared<Job>(pr.params);
  const Engine::Admit a = engine_.submit(job);
  if (a != Engine::Admit::Ok) {
    const bool drain = a == Engine::Admit::Draining;
    res.set_header("Retry-After", "1");
    const std::string msg = drain ? "the server is shutting down"
                            : a == Engine::Admit::Memory
                                ? "the server is short of memory: try again shortly"
                                : fmt::format("the server is busy ({} requests queued): try again shortly",
                                              engine_.config().limits.max_queue);
    return send_error(res, make_error(drain ? 503 : 429, msg, drain ? "server_error" : "rate_limit_error",
                                      Engine::admit_name(a)));
  }
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", ++next_id_);
  const int64_t created = int64_t(std::time(nullptr));
  const std::string model = engine_.config().model_id, source = engine_.energy_source();
  if (!pr.stream) {
    job->wait_done();
    if (job->finish_reason() == "cancelled")
      return send_error(res, make_error(503, "cancelled: " + job->error(), "server_error"));
    if (!job->error().empty())
      return send_error(res, make_error(500, "the request failed: " + job->error(), "server_error"));
    return send_json(res, 200, response_json(pr, id, created, model, job->text(), job->finish_reason(), job->usage(),
                                             source));
  }
  // Streaming: events as text arrives; a comment line after a second of silence shows whether the client is there.
  ++in_flight_;
  auto first = std::make_shared<bool>(true);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, pr, id, created, model, source, first](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& data) {
          const std::string ev = "data: " + data + "\n\n";
          return sink.write(ev.data(), ev.size());
        };
        if (*first) {  // the role (chat) or an empty piece at once: headers and a first event reach the client
          *first = false;
          if (!send(dump_json(chunk_json(pr, id, created, model, "", "", true)))) return job->cancel(), false;
        }
        std::string text;
        if (!job->next(text, 1.0)) {
          static const char ping[] = ": keep-alive\n\n";
          if (!sink.write(ping, sizeof ping - 1)) return job->cancel(), false;
          return true;
        }
        const bool done = job->done();
        if (done) job->next(text, 0);  // what was emitted just before the end
        if (!text.empty() && !send(dump_json(chunk_json(pr, id, created, model, text, "", false))))
          return job->cancel(), false;
        if (!done) return true;
        bool ok = true;
        if (!job->error().empty() || job->finish_reason() == "cancelled") {
          const bool cancelled = job->finish_reason() == "cancelled";
          ok = send(dump_json(error_json(make_error(cancelled ? 503 : 500,
                                                    (cancelled ? "cancelled: " : "the request failed: ") + job->error(),
                                                    "server_error"))));
        } else {
          ok = send(dump_json([&] {
            Json last = chunk_json(pr, id, created, model, "", job->finish_reason(), false);
            last["usage"] = usage_json(job->usage(), source);  // always, as an extension
            return last;
          }()));
          if (ok && pr.include_usage) ok = send(dump_json(usage_chunk_json(pr, id, created, model, job->usage(), source)));
        }
        if (ok) ok = send("[DONE]");
        if (ok) sink.done();
        return ok;
      },
      [this, job](bool success) {
        if (!success) job->cancel();  // the client went away: the engine drops it at the next step
        --in_flight_;
      });
}

}  // namespace wattmoe
