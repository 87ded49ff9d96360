// Page-Hinkley test for an upward shift in the mean of a stream (a window's loss or entropy, nats per token).
//   x̄_t = mean of x_1..x_t,   m_t = Σ_{i≤t} (x_i − x̄_i − δ),   M_t = min_{i≤t} m_i,   PH_t = m_t − M_t
// An alarm is raised when t ≥ min_samples and PH_t > λ. δ is the magnitude of change tolerated (the statistic drifts
// down by δ per sample while the mean holds), λ the evidence needed (in the stream's units × samples): a shift of
// size s > δ is flagged after about λ / (s − δ) samples. update() returns true on an alarm and then restarts the test
// from scratch (the new regime becomes the reference); reset() restarts it on demand.
#pragma once
#include <cstdint>

namespace wattmoe {

struct PageHinkleyConfig {
  double delta = 0.05;   // δ ≥ 0
  double lambda = 2.0;   // λ > 0
  int min_samples = 10;  // ≥ 1: no alarm before this many samples since the last (re)start
};
void validate_page_hinkley(const PageHinkleyConfig& c);  // Error naming the field

class PageHinkley {
 public:
  explicit PageHinkley(PageHinkleyConfig cfg = {});
  bool update(double x);  // non-finite x: Error
  void reset();
  double statistic() const { return m_ - m_min_; }  // PH_t
  int64_t samples() const { return n_; }
  const PageHinkleyConfig& config() const { return cfg_; }

 private:
  PageHinkleyConfig cfg_;
  int64_t n_ = 0;
  double mean_ = 0, m_ = 0, m_min_ = 0;
};

}  // namespace wattmoe
