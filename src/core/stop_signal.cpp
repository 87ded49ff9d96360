#include "core/stop_signal.h"

#include <csignal>

namespace wattmoe {

namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  std::signal(sig, SIG_DFL);  // async-signal-safe: a second signal kills
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
