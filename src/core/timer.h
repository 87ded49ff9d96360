// Monotonic wall-clock timing.
#pragma once
#include <chrono>

namespace wattmoe {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class Timer {
 public:
  Timer() : t0_(now_seconds()) {}
  double seconds() const { return now_seconds() - t0_; }
  void reset() { t0_ = now_seconds(); }

 private:
  double t0_;
};

}  // namespace wattmoe
