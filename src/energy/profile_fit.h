// Fits of what the profiler measures.
//
// fit_linear_relative: y ≈ a + b·x (J or s per call against tokens) by least squares on *relative* residuals,
//   minimising Σ ((a + b·x_i − y_i) / y_i)², so the call at 1 token weighs as much as the one at 4096 (plain least
//   squares would fit the big counts and leave the decode regime, where a dominates, wrong by 100%). a and b are
//   clamped to ≥ 0 (a negative fixed or marginal cost is noise or a non-linear block), with a note saying which.
//
// fit_hardware: the "calibrated once" analytic model (energy/cost_analytic.h) from per-call measurements of blocks
//   with known FLOPs and bytes:
//     energy  J = static_w·t + pJ/FLOP·flops + pJ/byte·bytes   (t the measured seconds per call)
//             — linear in the three coefficients, fitted on relative residuals, each kept ≥ 0 (the best of the
//               fits that leave out negative coefficients);
//     time    t = max(flops/peak_flops, bytes/bandwidth) + launch_s
//             — as a lower envelope of the measured times (a roofline bounds time from below): for each launch_s
//               in [0, fastest call) the fastest compute and byte rates seen give peak and bandwidth, and the
//               launch_s whose envelope lies closest to the points (relative residuals) is kept. A least-squares
//               fit instead lets kernels that are slow at middle token counts (too few tiles to fill the GPU)
//               pull launch_s above the fastest call, and then every activated expert is charged for it.
//   Points must span both sides of the roofline's ridge for static_w to be told apart from pJ/byte (a memory-bound
//   expert's time is affine in its bytes); the fit reports its residuals so a bad case shows.
#pragma once
#include <string>
#include <vector>

#include "energy/cost_analytic.h"
#include "energy/cost_model.h"

namespace wattmoe {

double median_of(std::vector<double> v);              // NaN for an empty vector
double relative_spread(const std::vector<double>& v);  // sample standard deviation / |mean|; 0 for < 2 values

struct LinearFit {
  LinearCost line;                   // y ≈ line.a + line.b·x
  double max_rel_residual = 0;       // max_i |fit(x_i) − y_i| / y_i
  double rms_rel_residual = 0;
  std::vector<double> rel_residuals; // (fit(x_i) − y_i) / y_i, in input order
  std::string note;                  // empty, or why a or b was clamped / could not be separated
};

// x_i ≥ 0, y_i > 0 finite, at least one point. One distinct x cannot separate a from b: a = 0 then, with a note.
// Errors name `what` and the bad point.
LinearFit fit_linear_relative(const std::vector<double>& x, const std::vector<double>& y, const std::string& what);

struct HardwarePoint {
  double flops = 0, bytes = 0;  // of one call
  double seconds = 0, joules = 0;  // measured per call
};

struct HardwareFit {
  HardwareCoeffs hw;
  double max_rel_residual_j = 0, rms_rel_residual_j = 0;  // energy model with the measured times
  double max_rel_residual_s = 0, rms_rel_residual_s = 0;  // roofline time
  size_t points = 0;
  std::string note;  // coefficients clamped to 0, unidentifiable parts
};

// At least 3 points with flops > 0, bytes > 0, seconds > 0, joules > 0 (Error naming `what` otherwise).
HardwareFit fit_hardware(const std::vector<HardwarePoint>& pts, const std::string& what);

// The analytic model's exact roofline for one call of work (flops, bytes): the same formulas as AnalyticCostModel.
double roofline_seconds(const HardwareCoeffs& hw, double flops, double bytes);
double roofline_joules(const HardwareCoeffs& hw, double flops, double bytes);

}  // namespace wattmoe
