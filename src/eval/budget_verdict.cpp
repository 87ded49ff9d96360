#include "eval/budget_verdict.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace wattmoe {

namespace {

// The measure over windows [b, e): energy over time (W) or over tokens (J/token).
double measure(const std::vector<BudgetWindow>& w, size_t b, size_t e, bool energy) {
  double j = 0, d = 0;
  for (size_t i = b; i < e; ++i) j += w[i].joules, d += energy ? w[i].tokens : w[i].seconds;
  return d > 0 ? j / d : NAN;
}

BudgetSegment judge_segment(const std::vector<BudgetWindow>& w, size_t b, size_t e, bool energy,
                            const BudgetGoals& g) {
  BudgetSegment s;
  s.target = w[b].target, s.first_window = int64_t(b), s.windows = int64_t(e - b);
  const size_t half = b + (e - b) / 2;  // the second half: [half, e)
  s.judged_windows = int64_t(e - half);
  s.mean = measure(w, half, e, energy);
  s.mean_error = (s.mean - s.target) / s.target;
  const size_t n = size_t(g.block_windows);
  for (size_t i = half; i + n <= e; i += n, ++s.blocks)
    s.worst_block_error = std::max(s.worst_block_error, std::abs(measure(w, i, i + n, energy) - s.target) / s.target);
  s.judged = s.blocks > 0 && std::isfinite(s.mean);
  s.held = s.judged && std::abs(s.mean_error) <= g.mean_error && s.worst_block_error <= g.block_error;
  return s;
}

std::string value(double v, bool energy) { return fmt::format(fmt::runtime(energy ? "{:.4g}" : "{:.1f}"), v); }

}  // namespace

BudgetVerdict judge_budget(const std::vector<BudgetWindow>& windows, bool energy, const BudgetGoals& goals) {
  BudgetVerdict v;
  v.energy = energy, v.goals = goals;
  for (size_t b = 0; b < windows.size();) {
    size_t e = b + 1;
    while (e < windows.size() && windows[e].target == windows[b].target) ++e;
    v.segments.push_back(judge_segment(windows, b, e, energy, goals));
    b = e;
  }
  bool all_judged = !v.segments.empty(), any_failed = false;
  for (const BudgetSegment& s : v.segments) all_judged &= s.judged, any_failed |= s.judged && !s.held;
  if (any_failed) v.held = false;
  else if (all_judged) v.held = true;
  return v;
}

Json BudgetVerdict::json() const {
  Json segs = Json::array();
  for (const BudgetSegment& s : segments)
    segs.push_back(Json{{"target", s.target}, {"first_window", s.first_window}, {"windows", s.windows},
                        {"judged_windows", s.judged_windows}, {"mean", std::isfinite(s.mean) ? Json(s.mean) : Json()},
                        {"mean_error", std::isfinite(s.mean_error) ? Json(s.mean_error) : Json()},
                        {"worst_block_error", s.worst_block_error}, {"blocks", s.blocks}, {"judged", s.judged},
                        {"held", s.held}});
  return Json{{"measure", energy ? "energy" : "power"}, {"unit", unit()},
              {"held", held ? Json(*held) : Json()}, {"segments", segs}, {"verdict", line()},
              {"goals", Json{{"mean_error", goals.mean_error}, {"block_error", goals.block_error},
                             {"block_windows", goals.block_windows}}}};
}

std::string BudgetVerdict::line() const {
  std::string targets, means;
  double worst_block = 0;
  for (const BudgetSegment& s : segments) {
    targets += (targets.empty() ? "" : " -> ") + fmt::format("{:.4g}", s.target);
    if (std::isfinite(s.mean))
      means += fmt::format("{}{} {} ({:+.1f}%)", means.empty() ? "" : ", ", value(s.mean, energy), unit(),
                           100 * s.mean_error);
    worst_block = std::max(worst_block, s.worst_block_error);
  }
  if (segments.empty()) return "budget not judged: no full window ran";
  const std::string head = fmt::format("budget {} {}", targets, unit());
  if (!held) {
    const int64_t need = 2 * int64_t(goals.block_windows);
    return fmt::format("{} not judged: fewer than {} full windows at a target (the second half's mean and {}-window "
                       "blocks are judged){}{}", head, need, goals.block_windows, means.empty() ? "" : "; mean ", means);
  }
  return fmt::format("{} {}: mean {}, {}-window blocks within ±{:.1f}%{}", head, *held ? "held" : "NOT held", means,
                     goals.block_windows, 100 * worst_block,
                     *held ? "" : fmt::format(" (goals: mean within ±{:g}%, blocks within ±{:g}%)",
                                              100 * goals.mean_error, 100 * goals.block_error));
}

}  // namespace wattmoe
