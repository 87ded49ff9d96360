// SIGINT/SIGTERM during a long job (train, run): the job finishes its current step or window, writes its logs,
// checkpoint and summary (marked "interrupted"), and the process exits 128 + the signal (130, 143) — never a cut-off
// line, never exit 0. A repeat within 2 s is ignored (`timeout` delivers one signal twice); a later one kills at once.
#pragma once

namespace wattmoe {

// While alive, SIGINT/SIGTERM set a flag instead of killing the process; the previous handlers come back on
// destruction. A signal handler can only reach process-wide state: this flag is the one exception to "no mutable
// globals".
class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  bool requested() const;

 private:
  void (*prev_int_)(int) = nullptr;
  void (*prev_term_)(int) = nullptr;
};

// The signal that stopped the last job (SIGINT, SIGTERM), or 0: main's exit status is 128 + it.
int stop_signal_received();
// "SIGINT", "SIGTERM" (the summaries' "interrupted" field); "" for 0.
const char* stop_signal_name(int sig);

}  // namespace wattmoe
