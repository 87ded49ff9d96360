// Learning-rate schedule: linear warmup, then cosine decay to min_ratio × peak at total_steps.
#pragma once
#include <algorithm>
#include <cmath>

namespace wattmoe {

struct LrSchedule {
  double peak = 3e-3, min_ratio = 0.1;
  int warmup = 100, total = 3000;
  double at(int step) const {  // step counts from 0
    if (step < warmup) return peak * double(step + 1) / double(warmup);
    const double progress = std::clamp(double(step - warmup) / double(std::max(1, total - warmup)), 0.0, 1.0);
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(M_PI * progress)));
  }
};

}  // namespace wattmoe
