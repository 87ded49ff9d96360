#include "energy/profile_fit.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"
#include "energy/sensor.h"

namespace wattmoe {

double median_of(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double relative_spread(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double mean = 0;
  for (double x : v) mean += x;
  mean /= double(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / double(v.size() - 1));
  return mean != 0 ? sd / std::fabs(mean) : 0;
}

namespace {

void residual_stats(const std::vector<double>& rel, double* max_abs, double* rms) {
  double m = 0, ss = 0;
  for (double r : rel) m = std::max(m, std::fabs(r)), ss += r * r;
  *max_abs = m;
  *rms = rel.empty() ? 0 : std::sqrt(ss / double(rel.size()));
}

}  // namespace

LinearFit fit_linear_relative(const std::vector<double>& x, const std::vector<double>& y, const std::string& what) {
  WATTMOE_REQUIRE(x.size() == y.size(), "{}: {} token counts but {} measurements", what, x.size(), y.size());
  WATTMOE_REQUIRE(!x.empty(), "{}: nothing to fit (no measurements)", what);
  for (size_t i = 0; i < x.size(); ++i) {
    WATTMOE_REQUIRE(std::isfinite(x[i]) && x[i] >= 0, "{}: point {}: x = {}: expected a finite number >= 0", what, i,
                    x[i]);
    WATTMOE_REQUIRE(std::isfinite(y[i]) && y[i] > 0,
                    "{}: point {} (x = {}): measured {}: expected a finite number > 0 (relative residuals need it)",
                    what, i, x[i], y[i]);
  }
  // Normal equations of Σ w_i (a + b·x_i − y_i)², w_i = 1 / y_i².
  double S = 0, Sx = 0, Sxx = 0, Sy = 0, Sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double w = 1.0 / (y[i] * y[i]);
    S += w, Sx += w * x[i], Sxx += w * x[i] * x[i], Sy += w * y[i], Sxy += w * x[i] * y[i];
  }
  LinearFit f;
  const double det = S * Sxx - Sx * Sx;
  const bool separable = det > 1e-12 * S * Sxx;  // at least two distinct x
  double a, b;
  if (!separable) {
    // One distinct x: the cost at that x is known, its split is not. Put it all in the marginal part (a = 0) when x > 0.
    if (Sxx > 0) {
      a = 0, b = Sxy / Sxx;
      f.note = "one token count: the fixed part cannot be separated, a = 0";
    } else {
      a = Sy / S, b = 0;
      f.note = "only x = 0: b = 0";
    }
  } else {
    a = (Sxx * Sy - Sx * Sxy) / det;
    b = (S * Sxy - Sx * Sy) / det;
    if (a < 0) {
      a = 0, b = Sxy / Sxx;
      f.note = "fitted a < 0 clamped to 0 (b refitted)";
    } else if (b < 0) {
      a = Sy / S, b = 0;
      f.note = "fitted b < 0 clamped to 0 (a refitted): the cost does not grow with tokens here";
    }
  }
  f.line = {a, b};
  f.rel_residuals.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) f.rel_residuals[i] = (a + b * x[i] - y[i]) / y[i];
  residual_stats(f.rel_residuals, &f.max_rel_residual, &f.rms_rel_residual);
  return f;
}

double roofline_seconds(const HardwareCoeffs& hw, double flops, double bytes) {
  return std::max(flops / hw.peak_flops, bytes / hw.bandwidth_bytes_per_s) + hw.launch_s;
}

double roofline_joules(const HardwareCoeffs& hw, double flops, double bytes) {
  return hw.static_w * roofline_seconds(hw, flops, bytes) + 1e-12 * (hw.pj_per_flop * flops + hw.pj_per_byte * bytes);
}

namespace {

// Least squares of rows·c ≈ 1 over the columns in `mask` (others fixed at 0), by the normal equations solved with
// partial pivoting. Returns false when the subsystem is singular.
bool solve_subset(const std::vector<std::array<double, 3>>& rows, unsigned mask, std::array<double, 3>& c) {
  int idx[3], n = 0;
  for (int j = 0; j < 3; ++j)
    if (mask & (1u << j)) idx[n++] = j;
  double A[3][4] = {};
  for (const auto& r : rows)
    for (int p = 0; p < n; ++p) {
      for (int q = 0; q < n; ++q) A[p][q] += r[size_t(idx[p])] * r[size_t(idx[q])];
      A[p][n] += r[size_t(idx[p])];
    }
  double scale = 0;
  for (int p = 0; p < n; ++p) scale = std::max(scale, std::fabs(A[p][p]));
  for (int col = 0; col < n; ++col) {
    int piv = col;
    for (int r = col + 1; r < n; ++r)
      if (std::fabs(A[r][col]) > std::fabs(A[piv][col])) piv = r;
    if (!(std::fabs(A[piv][col]) > 1e-13 * scale)) return false;
    for (int k = 0; k <= n; ++k) std::swap(A[col][k], A[piv][k]);
    for (int r = 0; r < n; ++r) {
      if (r == col) continue;
      const double m = A[r][col] / A[col][col];
      for (int k = col; k <= n; ++k) A[r][k] -= m * A[col][k];
    }
  }
  c = {0, 0, 0};
  for (int p = 0; p < n; ++p) c[size_t(idx[p])] = A[p][n] / A[p][p];
  return true;
}

// The roofline as a lower envelope of the measured times: for a launch time L, the fastest rates seen,
//   1/peak = min_i (t_i − L) / flops_i,   1/bandwidth = min_i (t_i − L) / bytes_i,
// make max(flops/peak, bytes/bandwidth) + L ≤ t_i at every point (a roofline bounds time from below: a kernel that
// is slow at some token count, e.g. one that cannot fill the GPU, must not drag the bound up, and L cannot exceed
// the fastest call). Returns Σ_i ((t_i − pred_i) / t_i)², the tightness the scan over L minimises.
double envelope(const std::vector<HardwarePoint>& pts, double L, double* inv_peak, double* inv_bw) {
  double p = INFINITY, q = INFINITY;
  for (const auto& x : pts) p = std::min(p, (x.seconds - L) / x.flops), q = std::min(q, (x.seconds - L) / x.bytes);
  double sse = 0;
  for (const auto& x : pts) {
    const double r = (x.seconds - std::max(x.flops * p, x.bytes * q) - L) / x.seconds;
    sse += r * r;
  }
  *inv_peak = p, *inv_bw = q;
  return sse;
}

// Scans L over [0, min_i t_i) on a grid, then narrows around the best by golden-section search. Deterministic.
void fit_roofline_time(const std::vector<HardwarePoint>& pts, HardwareCoeffs& hw) {
  double tmin = INFINITY;
  for (const auto& x : pts) tmin = std::min(tmin, x.seconds);
  const double hi = tmin * (1 - 1e-6);
  double p, q;
  auto f = [&](double L) { return envelope(pts, L, &p, &q); };
  constexpr int kGrid = 1000;
  int best = 0;
  double fbest = INFINITY;
  for (int i = 0; i <= kGrid; ++i) {
    const double v = f(hi * i / kGrid);
    if (v < fbest) fbest = v, best = i;
  }
  double a = hi * std::max(best - 1, 0) / kGrid, b = hi * std::min(best + 1, kGrid) / kGrid;
  const double g = 0.5 * (std::sqrt(5.0) - 1);
  double c = b - g * (b - a), d = a + g * (b - a), fc = f(c), fd = f(d);
  for (int it = 0; it < 100; ++it) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = f(d);
    }
  }
  double L = 0.5 * (a + b);
  if (f(L) > fbest) L = hi * best / kGrid;
  f(L);
  hw.launch_s = L;
  hw.peak_flops = 1 / p;
  hw.bandwidth_bytes_per_s = 1 / q;
}

}  // namespace

HardwareFit fit_hardware(const std::vector<HardwarePoint>& pts, const std::string& what) {
  WATTMOE_REQUIRE(pts.size() >= 3, "{}: {} measurements, need at least 3 to fit static W, pJ/FLOP and pJ/byte", what,
                  pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    const HardwarePoint& p = pts[i];
    WATTMOE_REQUIRE(std::isfinite(p.flops) && p.flops > 0 && std::isfinite(p.bytes) && p.bytes > 0,
                    "{}: point {}: flops {} and bytes {}: expected finite numbers > 0", what, i, p.flops, p.bytes);
    WATTMOE_REQUIRE(std::isfinite(p.seconds) && p.seconds > 0 && std::isfinite(p.joules) && p.joules > 0,
                    "{}: point {}: measured {} s and {} J: expected finite numbers > 0", what, i, p.seconds, p.joules);
  }
  HardwareFit out;
  out.points = pts.size();
  // Energy: rows (t, flops·1e-12, bytes·1e-12) / J so that c = (static_w, pJ/FLOP, pJ/byte) and residuals are relative.
  // Columns are scaled to unit RMS before solving (pJ·FLOP and W·s differ by orders of magnitude).
  std::vector<std::array<double, 3>> rows;
  for (const auto& p : pts) rows.push_back({p.seconds / p.joules, 1e-12 * p.flops / p.joules, 1e-12 * p.bytes / p.joules});
  std::array<double, 3> colscale{};
  for (const auto& r : rows)
    for (size_t j = 0; j < 3; ++j) colscale[j] += r[j] * r[j];
  for (auto& s : colscale) s = std::sqrt(s / double(rows.size()));
  for (auto& r : rows)
    for (size_t j = 0; j < 3; ++j) r[j] /= colscale[j];
  double best_sse = INFINITY;
  std::array<double, 3> best{};
  unsigned best_mask = 0;
  for (unsigned mask = 7; mask >= 1; --mask) {  // the full fit first: on ties it wins
    std::array<double, 3> c;
    if (!solve_subset(rows, mask, c)) continue;
    if (c[0] < 0 || c[1] < 0 || c[2] < 0) continue;
    double sse = 0;
    for (const auto& r : rows) {
      const double e = r[0] * c[0] + r[1] * c[1] + r[2] * c[2] - 1;
      sse += e * e;
    }
    if (sse < best_sse) best_sse = sse, best = c, best_mask = mask;
  }
  WATTMOE_REQUIRE(best_mask != 0, "{}: no non-negative energy fit exists for these measurements", what);
  out.hw.static_w = best[0] / colscale[0];
  out.hw.pj_per_flop = best[1] / colscale[1];
  out.hw.pj_per_byte = best[2] / colscale[2];
  static const char* kNames[3] = {"static_w", "pj_per_flop", "pj_per_byte"};
  for (unsigned j = 0; j < 3; ++j)
    if (!(best_mask & (1u << j)))
      out.note += fmt::format("{}{} fixed at 0 (the full fit made it negative)", out.note.empty() ? "" : "; ", kNames[j]);
  std::vector<double> rel;
  for (const auto& p : pts)
    rel.push_back((out.hw.static_w * p.seconds + 1e-12 * (out.hw.pj_per_flop * p.flops + out.hw.pj_per_byte * p.bytes) -
                   p.joules) / p.joules);
  residual_stats(rel, &out.max_rel_residual_j, &out.rms_rel_residual_j);

  fit_roofline_time(pts, out.hw);
  rel.clear();
  bool any_compute = false, any_memory = false;
  for (const auto& p : pts) {
    rel.push_back((roofline_seconds(out.hw, p.flops, p.bytes) - p.seconds) / p.seconds);
    (p.flops / out.hw.peak_flops >= p.bytes / out.hw.bandwidth_bytes_per_s ? any_compute : any_memory) = true;
  }
  residual_stats(rel, &out.max_rel_residual_s, &out.rms_rel_residual_s);
  if (!any_compute)
    out.note += std::string(out.note.empty() ? "" : "; ") + "no compute-bound point: peak_flops is not identified";
  if (!any_memory)
    out.note += std::string(out.note.empty() ? "" : "; ") + "no memory-bound point: bandwidth is not identified";
  return out;
}

}  // namespace wattmoe
