#include "energy/sim_load.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

namespace {
// Shapes of a Mixtral-like decode step (≈14 GFLOP/token, ≈1.4 GB of active weights) and of an 8192³ GEMM.
const Work kDecode{2.0 * 7e9, 1.4e9, "synthetic.decode"};
const Work kPrefill{2.0 * 8192.0 * 8192.0 * 8192.0, 3.0 * 8192.0 * 8192.0 * 2.0, "synthetic.prefill"};
}  // namespace

SyntheticLoad::SyntheticLoad(SimulatedGpu& gpu, double period_s) : gpu_(gpu), period_(period_s) {
  WATTMOE_REQUIRE(period_s > 0, "synthetic load: period: expected > 0 s, got {}", period_s);
}

std::string_view SyntheticLoad::phase_at(double t) const {
  const double x = std::fmod(t, period_) / period_;  // position in the period, [0, 1)
  if (x < 1.0 / 6) return "idle";
  if (x < 0.5) return "decode";
  if (x < 5.0 / 6) return "prefill";
  return "idle";
}

void SyntheticLoad::advance_to(double t) {
  while (gpu_.time() < t) {
    const double now = gpu_.time();
    std::string_view phase = phase_at(now);
    if (phase == "idle") {
      // Idle until the phase ends or t, whichever is first.
      const double base = std::floor(now / period_) * period_, x = (now - base) / period_;
      const double phase_end = base + (x < 1.0 / 6 ? period_ / 6 : period_);
      gpu_.idle(std::max(std::min(t, phase_end) - now, 1e-9));
    } else {
      gpu_.run(phase == "decode" ? kDecode : kPrefill);
    }
  }
}

}  // namespace wattmoe
