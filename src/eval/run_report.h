// What `wattmoe run` tells a person: a few lines read off the run's summary JSON (eval/budgeted_run.h), the first
// of them the verdict —
//   budget 320 W held: mean 318.4 W (-0.5%), 4-window blocks within ±2.9%, bits/byte 1.8612 with TTT
//   bits/byte 1.8740 on 20,000 tokens, 2.00 experts/token, no budget (simulated GPU: mean 390.1 W)
// "held" is eval/budget_verdict.h's rule. The summary carries the same line as "verdict".
#pragma once
#include <string>

#include "io/json.h"

namespace wattmoe {

// The schema names of the commands' JSON ("schema" field): "wattmoe.<command>/<version>". The version goes up
// when a key is renamed or removed (new keys keep it).
inline constexpr const char* kRunSchema = "wattmoe.run/1";

// 12345 -> "12,345".
std::string thousands(int64_t n);

// The verdict line of a run summary (without its "verdict" field: this computes it).
std::string run_verdict(const Json& summary);
// The verdict and a few lines more (scores, TTT, plant, what was interrupted), each ending in '\n'.
std::string run_report_text(const Json& summary);

}  // namespace wattmoe
