#include "adapt/sgd.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

SgdMomentum::SgdMomentum(std::vector<ParamRange> ranges, int64_t total, double momentum, bool nesterov)
    : ranges_(std::move(ranges)), v_(size_t(total), 0.f), momentum_(momentum), nesterov_(nesterov) {
  WATTMOE_REQUIRE(std::isfinite(momentum) && momentum >= 0 && momentum < 1,
                  "sgd momentum must be in [0, 1), got {}", momentum);
  for (const ParamRange& r : ranges_) WATTMOE_CHECK(r.offset >= 0 && r.numel >= 0 && r.offset + r.numel <= total);
}

void SgdMomentum::step(float* p, const float* g, double lr) {
  ++t_;
  const float mu = float(momentum_), a = float(lr);
  for (const ParamRange& r : ranges_)
    for (int64_t i = r.offset; i < r.offset + r.numel; ++i) {
      float& v = v_[size_t(i)];
      v = mu * v + g[i];
      p[i] -= a * (nesterov_ ? g[i] + mu * v : v);
    }
}

void SgdMomentum::reset() {
  for (const ParamRange& r : ranges_) std::fill(v_.begin() + r.offset, v_.begin() + r.offset + r.numel, 0.f);
  t_ = 0;
}

}  // namespace wattmoe
