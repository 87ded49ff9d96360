#include "core/stop_signal.h"

#include <csignal>

namespace wattmoe {

namespace {
volatile std::sig_atomic_t g_signal = 0;
// A repeated signal changes nothing: `timeout` and process-group kills deliver one signal twice, and a second one
// must not kill the process while it writes its logs.
extern "C" void on_stop_signal(int sig) {
  if (g_signal == 0) g_signal = sig;
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
