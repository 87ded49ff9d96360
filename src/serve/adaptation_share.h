// AdaptationShare: how much of the server's recent time online test-time adaptation took, and whether another
// adaptation step may run now (serve --ttt-max-share). The serving steps' and the adaptation steps' seconds are kept
// as exponentially decayed sums (time constant tau_s, so "recent" means the last ~tau_s seconds); the share is
// adaptation / (adaptation + serving). allow(): always while no request is in flight (adapting then delays nobody),
// else while the share is below the cap; cap 1 never holds adaptation back. Times are the caller's clock (seconds).
#pragma once
#include <algorithm>
#include <cmath>

namespace wattmoe {

class AdaptationShare {
 public:
  explicit AdaptationShare(double cap = 1, double tau_s = 10) : cap_(cap), tau_s_(tau_s) {}
  void serving(double seconds, double now_s) { decay(now_s), serving_ += seconds; }
  void adaptation(double seconds, double now_s) { decay(now_s), adapting_ += seconds; }
  double share(double now_s) const {  // 0 before anything was recorded
    const double f = factor(now_s), a = adapting_ * f, t = (adapting_ + serving_) * f;
    return t > 0 ? a / t : 0;
  }
  bool allow(bool in_flight, double now_s) const { return cap_ >= 1 || !in_flight || share(now_s) < cap_; }

 private:
  double factor(double now_s) const { return now_s > at_s_ ? std::exp(-(now_s - at_s_) / tau_s_) : 1.0; }
  void decay(double now_s) {
    const double f = factor(now_s);
    serving_ *= f, adapting_ *= f, at_s_ = std::max(at_s_, now_s);
  }
  double cap_, tau_s_;
  double serving_ = 0, adapting_ = 0, at_s_ = -INFINITY;
};

}  // namespace wattmoe
