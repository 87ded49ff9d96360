// Stability guards of test-time adaptation: when adapted weights collapse, go back to the source weights.
// CollapseGuard looks at each window's statistics (scored before adapting on the window) and names a reason to reset:
//   entropy       mean next-token entropy (nats) below entropy_floor — the model has become over-confident
//                 (entropy minimisation's failure mode)
//   expert_share  one expert takes more than max_expert_share of a MoE layer's (token, expert) pairs — routing has
//                 collapsed onto one expert
//   loss          the window's loss (nats/token) above (1 + loss_margin) × the reference: an EMA of the losses of the
//                 earlier windows, seeded by the first window scored with the source weights (the stream's start) and
//                 updated with every later window after the check, ref ← (1−α)·ref + α·loss
//   non_finite    the loss or entropy is NaN/inf (always checked: such weights are never worth keeping)
// A check of 0 is off. Only adapted weights are judged (resetting the source weights would change nothing), but the
// loss reference follows every window.
//
// SourceGuard compares the adapted weights θ with the source weights θ₀ on the same text, so it tracks the text's own
// difficulty (the loss guard's reference does not). A comparison scores one window with both, each before adapting on
// it (prequential), and records both losses (nats/token); the running comparison is the ratio of exponentially
// weighted sums over the comparisons since adaptation (re)started (the newest weighs α, each earlier one (1 − α) less):
//   rel = Σ wᵢ·loss_θ,ᵢ / Σ wᵢ·loss_θ₀,ᵢ − 1
// Two modes:
//   live       windows are scored (reported) with θ. The 1st, (1+N)th, (1+2N)th, … window scored with θ ≠ θ₀ since
//              the (re)start (N = check_every; collapse resets do not restart the count) is also scored with θ₀ — one
//              extra forward, never part of the reported score.
//   probation  θ adapts but windows are reported with θ₀; θ is scored on every window as well (the extra forward, as
//              its activations serve the adaptation step). After promote_after comparisons with rel < −margin, θ goes
//              live. With probation on, the stream starts here and every failure returns here.
// Failure: rel > margin (or non-finite) → "worse_than_source": θ is reset to θ₀, the comparison restarts and
// adaptation is suspended for the next backoff·2^f windows (capped at max_backoff; f = consecutive failures, no longer
// counted once the cap is reached); suspended windows are scored with θ₀. Success: a live check with rel < −margin, or
// a promotion, decrements f (halving the next backoff).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapt/param_groups.h"

namespace wattmoe {

struct CollapseGuardConfig {
  double entropy_floor = 0;     // nats, ≥ 0; 0 = off
  double max_expert_share = 0;  // (0, 1]; 0 = off
  double loss_margin = 0;       // m ≥ 0; 0 = off
  double loss_alpha = 0.1;      // EMA weight of a new window, (0, 1]
};
void validate_collapse_guard(const CollapseGuardConfig& c);

struct WindowStats {
  double loss = 0;      // nats per token
  double entropy = 0;   // mean next-token entropy, nats
  const std::vector<std::vector<int64_t>>* counts = nullptr;  // [layer][expert] pairs; empty rows for dense layers
};

class CollapseGuard {
 public:
  explicit CollapseGuard(CollapseGuardConfig cfg = {});
  // The reason to reset ("non_finite", "entropy", "expert_share", "loss"), or empty. `adapted`: the weights differ from the
  // source's (only then is a reason returned).
  std::string check(const WindowStats& s, bool adapted);
  const CollapseGuardConfig& config() const { return cfg_; }

 private:
  CollapseGuardConfig cfg_;
  std::optional<double> ref_;
};

struct SourceGuardConfig {
  int check_every = 0;     // ≥ 0: N, live windows between comparisons; 0 = off
  double margin = 0.002;   // ≥ 0, relative: θ fails when its loss exceeds θ₀'s by more than this share
  double alpha = 0.25;     // (0, 1]: weight of the newest comparison in the running one (1 = the newest alone)
  int backoff = 8;         // ≥ 0 windows without adaptation after a first failure; doubles per consecutive failure
  int max_backoff = 128;   // ≥ backoff: the cap of the doubled backoff
  bool probation = true;   // report θ₀ until θ has beaten it (at the start and after every failure)
  int promote_after = 2;   // ≥ 1 comparisons on probation before θ may go live
};
void validate_source_guard(const SourceGuardConfig& c);

class SourceGuard {
 public:
  explicit SourceGuard(SourceGuardConfig cfg = {});
  bool enabled() const { return cfg_.check_every > 0; }
  // Call once per window, in stream order, before adapting on it: whether adaptation is suspended on this window (a
  // backoff runs); counts the window off the backoff.
  bool begin_window();
  // Whether windows are reported with θ₀ while θ adapts.
  bool on_probation() const { return probation_; }
  // Whether this window is compared. `adapted`: the weights under test differ from θ₀ (else nothing is compared).
  bool due(bool adapted);
  // Records one comparison (nats/token of θ and of θ₀ on the same window); returns "worse_than_source" (the caller
  // resets θ; a backoff starts) or "" (and may promote θ to live).
  std::string record(double loss, double source_loss);
  double relative() const { return den_ > 0 ? num_ / den_ - 1 : 0; }  // the running comparison rel
  int backoff_left() const { return backoff_left_; }
  int failures() const { return failures_; }
  int64_t promotions() const { return promotions_; }
  const SourceGuardConfig& config() const { return cfg_; }

 private:
  SourceGuardConfig cfg_;
  bool probation_;
  double num_ = 0, den_ = 0;
  int64_t since_ = 0, compared_ = 0;  // live windows scored with θ ≠ θ₀ / comparisons, since the (re)start or promotion
  int backoff_left_ = 0, failures_ = 0;
  int64_t promotions_ = 0;
};

// Mean-teacher weights: θ_T ← m·θ_T + (1 − m)·θ over the trainable ranges after every adaptation step; the other
// elements are the source's and never move. reset() copies the source back.
class EmaTeacher {
 public:
  EmaTeacher(double momentum, std::vector<ParamRange> ranges, std::vector<float> source);  // momentum in [0, 1)
  void update(const float* params);
  void reset(const float* source);
  const float* params() const { return theta_.data(); }

 private:
  double m_;
  std::vector<ParamRange> ranges_;
  std::vector<float> theta_;
};

}  // namespace wattmoe
