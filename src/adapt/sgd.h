// SGD with (heavy-ball) momentum over the trainable ranges of a flat parameter buffer:
//   v ← μ·v + g;   θ ← θ − lr·v            (μ = 0: plain SGD; nesterov: θ ← θ − lr·(g + μ·v))
// Only elements inside the ranges are read or written; the velocity buffer is indexed like the parameters but only
// its trainable entries are ever non-zero. reset() zeroes the velocity (what a reset to the source weights needs).
#pragma once
#include <cstdint>
#include <vector>

#include "adapt/param_groups.h"

namespace wattmoe {

class SgdMomentum {
 public:
  // total: the parameter buffer's length. Error for momentum outside [0, 1).
  SgdMomentum(std::vector<ParamRange> ranges, int64_t total, double momentum, bool nesterov = false);
  void step(float* params, const float* grads, double lr);
  void reset();
  int64_t steps() const { return t_; }

 private:
  std::vector<ParamRange> ranges_;
  std::vector<float> v_;
  double momentum_;
  bool nesterov_;
  int64_t t_ = 0;
};

}  // namespace wattmoe
