#include "serve/serve.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"

namespace wattmoe {

void check_serve_config(const ServeConfig& c) {
  check_engine_config(c.engine);
  check_http_options(c.http);
}

namespace {

// Restores the signal mask it found when it goes out of scope.
struct BlockedSignals {
  sigset_t set{}, old{};
  BlockedSignals() {
    sigemptyset(&set);
    sigaddset(&set, SIGTERM), sigaddset(&set, SIGINT), sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, &old);
  }
  ~BlockedSignals() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
};

}  // namespace

Json serve_until_signal(const ServeConfig& c, const ModelWeights<float>& m, std::shared_ptr<const Tokenizer> tok) {
  check_serve_config(c);
  // Before any thread starts, so that every thread inherits the mask and the signals wait for sigwait below.
  BlockedSignals blocked;
  signal(SIGPIPE, SIG_IGN);  // a client that went away is a failed write, not the end of the process
  Engine engine(c.engine, m, std::move(tok));
  HttpServer http(engine, c.http);
  const int port = http.start();
  if (!c.port_file.empty()) {
    const std::string text = std::to_string(port) + "\n";
    AtomicFile f(c.port_file);
    f.write(text.data(), text.size());
    f.commit();
  }
  log_info("serve: listening on http://{}:{} (SIGTERM or SIGINT to drain and stop)", c.http.host, port);
  // The listener stopping by itself (it should not) wakes this thread as a signal would.
  std::atomic<bool> stopping{false};
  std::thread watch([&http, &stopping] {
    while (http.running() && !stopping) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!stopping) kill(getpid(), SIGUSR1);
  });
  int sig = 0;
  sigwait(&blocked.set, &sig);
  stopping = true;
  if (sig == SIGUSR1) log_warn("serve: the HTTP listener stopped by itself; shutting down");
  else log_info("serve: {} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  http.shutdown();
  watch.join();
  Json summary = engine.stop();
  log_info("serve: stopped; requests by outcome {} ({} J {})", summary["requests"].dump(), summary["energy_j"].get<double>(),
           summary["energy_source"].get<std::string>());
  return summary;
}

}  // namespace wattmoe
