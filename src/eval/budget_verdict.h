// Was the budget held? The one definition, used by `wattmoe run`'s summary (eval/budgeted_run.h) and its verdict
// line, and the same rule docs/results.md and bench/serve_bench.py judge by:
//   the windows are cut into segments of one target (a --budget-schedule step starts a new one); over each
//   segment's second half, the mean (energy over time for a power budget, energy over tokens for an energy budget)
//   must be within ±2% of the target, and every block of 4 consecutive windows there within ±5%.
// A segment whose second half holds no full block (fewer than 8 windows at one target) is not judged; a run is
// held when every segment is judged and held, NOT held when any judged segment is not, and else not judged.
// Only full windows count (the stream's last, shorter window draws less and is left out).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/json.h"

namespace wattmoe {

struct BudgetGoals {
  double mean_error = 0.02;   // |second-half mean − target| / target at most this
  double block_error = 0.05;  // every block's |mean − target| / target at most this
  int block_windows = 4;      // windows per block
};

// One window as the plant ran it, with the target in force while it ran.
struct BudgetWindow {
  double joules = 0, seconds = 0, tokens = 0;
  double target = 0;
};

struct BudgetSegment {
  double target = 0;
  int64_t first_window = 0, windows = 0;  // the segment, in the run's full windows
  int64_t judged_windows = 0;             // its second half
  double mean = 0, mean_error = 0;        // over the second half (relative error, signed)
  double worst_block_error = 0;           // largest |relative error| of a block (0 without blocks)
  int64_t blocks = 0;
  bool judged = false, held = false;
};

struct BudgetVerdict {
  bool energy = false;                  // J/token budget (else W)
  std::vector<BudgetSegment> segments;
  std::optional<bool> held;             // nullopt: not judged (too few windows)
  BudgetGoals goals;
  const char* unit() const { return energy ? "J/token" : "W"; }
  Json json() const;                    // "held" is null when not judged
  // "budget 320 W held: mean 318.4 W (-0.5%), 4-window blocks within ±2.9%" (no trailing period).
  std::string line() const;
};

// Segments the windows by target and judges each by `goals`.
BudgetVerdict judge_budget(const std::vector<BudgetWindow>& windows, bool energy, const BudgetGoals& goals = {});

}  // namespace wattmoe
