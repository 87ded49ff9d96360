// wattmoe serve: an OpenAI-compatible HTTP server that holds a power or energy budget and bills joules per request
// — the library's server (serve/serve.h says what it does; docs/serve.md the endpoints). This file only maps flags to
// its options, loads the model and tokenizer, and prints the summary when a signal has stopped it.
#include <filesystem>

#include "cli/commands.h"
#include "cli/common_flags.h"
#include "cli/defaults.h"
#include "cli/routing_flags.h"
#include "cli/ttt_flags.h"
#include "serve/engine_options.h"
#include "serve/serve.h"

namespace wattmoe::cli {

namespace {

struct ServeArgs {
  ServeConfig serve;
  std::string model = default_model_dir(), tokenizer, model_id;
};

void run_serve(ServeArgs& a) {
  check_serve_config(a.serve);  // before any work: a bad flag, a GPU-less machine or a CPU-only build fails here
  const ModelWeights<float> m = load_model<float>(a.model);
  std::shared_ptr<const Tokenizer> tok = model_tokenizer(a.model, a.tokenizer, m.config.vocab_size);
  EngineConfig& e = a.serve.engine;
  e.model_id = a.model_id.empty() ? std::filesystem::path(a.model).lexically_normal().filename().string() : a.model_id;
  if (e.model_id.empty()) e.model_id = std::filesystem::path(a.model).lexically_normal().parent_path().filename();
  fmt::print("{}\n", serve_until_signal(a.serve, m, tok).dump(2));
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  EngineConfig& e = a->serve.engine;
  HttpOptions& h = a->serve.http;
  CLI::App* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server under a power/energy budget, billing joules per request (docs/serve.md)");
  add_model_flags(cmd, a->model, a->tokenizer);
  cmd->add_option("--model-id", a->model_id, "the model's name in the API (default: the model directory's name)");
  add_device_flags(cmd, e.runner, "the model and its KV caches");
  add_threads_flag(cmd);
  add_routing_flags(cmd, e.routing);
  add_ttt_flags(cmd, e.ttt, true);  // wattmoe run's --ttt options: adapt on answered requests' text (docs/serve.md)
  visit_engine_options(e, TableFlags{cmd});  // budget, energy, --context: shared with Python (serve/engine_options.h)
  cmd->add_option("--max-batch", e.limits.max_batch, "KV-cache slots: the most sequences decoded together")
      ->capture_default_str();
  cmd->add_option("--max-queue", e.limits.max_queue, "requests waiting for a slot before new ones get 429")
      ->capture_default_str();
  cmd->add_option("--min-free-host-mb", e.limits.min_free_host_mb,
                  "refuse new requests (429) while the host has less memory available; below twice this, at most half "
                  "the batch runs (0: never)")->capture_default_str();
  cmd->add_option("--max-gpu-memory-fraction", e.limits.max_gpu_memory_fraction,
                  "refuse new requests (429) while the GPU's memory is fuller than this; above this - 0.05, at most "
                  "half the batch runs")->capture_default_str();
  cmd->add_option("--min-step-s", e.limits.min_step_s,
                  "each scheduler step lasts at least this long (0: as fast as it runs; paces a CPU like a slower "
                  "device, for tests)")->capture_default_str();
  cmd->add_option("--ttt-max-share", e.limits.ttt_max_share,
                  "with --ttt: the most of the recent time (~10 s) adaptation may take while requests are in flight; "
                  "answered texts wait meanwhile (1: no cap)")->capture_default_str();
  cmd->add_option("--host", h.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", h.port, "port (0: any free port; see --port-file)")->capture_default_str();
  cmd->add_option("--port-file", a->serve.port_file, "write the port here once the server accepts requests");
  cmd->add_option("--max-body-bytes", h.max_body_bytes, "larger request bodies get 413")->capture_default_str();
  cmd->add_option("--http-threads", h.threads, "HTTP worker threads (0: max-batch + max-queue + 8)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout-s", h.drain_timeout_s,
                  "on SIGTERM, how long in-flight requests may run before they are cancelled")->capture_default_str();
  cmd->add_option("--keep-alive-s", h.keep_alive_s, "idle keep-alive connections close after this long")
      ->capture_default_str();
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace wattmoe::cli
