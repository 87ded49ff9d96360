#include "core/stop_signal.h"

#include <csignal>
#include <ctime>

namespace wattmoe {

namespace {
volatile std::sig_atomic_t g_signal = 0;
volatile std::time_t g_first_s = 0;  // CLOCK_MONOTONIC seconds of the first signal
constexpr std::time_t kForceAfterS = 2;

std::time_t monotonic_s() {  // clock_gettime is async-signal-safe
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec;
}

// A signal repeated within kForceAfterS changes nothing: `timeout` and process-group kills deliver one signal twice,
// and the second must not kill the process while it writes its logs. One that comes later is a person insisting:
// the default action (the process dies at once, as before the first).
extern "C" void on_stop_signal(int sig) {
  if (g_signal == 0) {
    g_signal = sig, g_first_s = monotonic_s();
  } else if (monotonic_s() - g_first_s > kForceAfterS) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
}  // namespace

StopOnSignal::StopOnSignal() {
  g_signal = 0;
  prev_int_ = std::signal(SIGINT, on_stop_signal);
  prev_term_ = std::signal(SIGTERM, on_stop_signal);
}
StopOnSignal::~StopOnSignal() {
  std::signal(SIGINT, prev_int_);
  std::signal(SIGTERM, prev_term_);
}
bool StopOnSignal::requested() const { return g_signal != 0; }

int stop_signal_received() { return g_signal; }

const char* stop_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig ? "signal" : ""; }

}  // namespace wattmoe
