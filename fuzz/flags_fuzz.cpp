// The small flag grammars, one target each (WATTMOE_FUZZ_FLAG names it): --mask, --budget-schedule,
// --expert-shape, --token-counts, --ttt-groups, --ttt-trigger. Accepted values keep the promises their parsers make.
#include <cmath>
#include <cstring>

#include "adapt/param_groups.h"
#include "eval/budgeted_run.h"
#include "eval/routing_setup.h"
#include "fuzz_util.h"
#include "profile/profile_job.h"

using namespace wattmoe;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s = fuzz::text(data, size);
  const std::string_view flag = WATTMOE_FUZZ_FLAG;
  fuzz::accept_or_refuse([&] {
    if (flag == "mask") {
      const std::vector<bool> m = parse_mask(s, 8);
      if (!m.empty() && m.size() != 8) __builtin_trap();
    } else if (flag == "budget_schedule") {
      const auto sched = parse_budget_schedule(s);
      for (size_t i = 0; i < sched.size(); ++i)
        if (sched[i].first < 0 || !(sched[i].second > 0) || !std::isfinite(sched[i].second) ||
            (i > 0 && sched[i].first <= sched[i - 1].first))
          __builtin_trap();
    } else if (flag == "expert_shape") {
      const auto [h, i] = parse_expert_shape(s);
      if (h < 1 || i < 1 || h > kMaxExpertDim || i > kMaxExpertDim) __builtin_trap();
    } else if (flag == "token_counts") {
      for (int t : parse_token_counts(s))
        if (t < 1 || t > (1 << 20)) __builtin_trap();
    } else if (flag == "ttt_groups") {
      parse_param_groups(s);
    } else if (flag == "ttt_trigger") {
      TttOptions t;
      t.triggers = s, t.every = 4, t.power_above_w = 300, t.complexity = 1.5;
      parse_triggers(t);
    } else {
      __builtin_trap();
    }
  });
  return 0;
}
