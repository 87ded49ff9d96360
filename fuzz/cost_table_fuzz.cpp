// Cost tables (energy/cost_table.h): parse, then price every expert as routing does (finite, non-negative).
#include <cmath>

#include "energy/cost_table.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const auto m = wattmoe::ProfiledCostModel::from_json(wattmoe::parse_json(wattmoe::fuzz::text(data, size), "costs"),
                                                         "costs");
    for (int l = 0; l < m.num_layers(); ++l)
      for (double tokens : {1.0, 64.0}) {
        const wattmoe::ExpertCosts c = m.routing_costs(l, tokens);
        for (double x : c.fixed)
          if (!std::isfinite(x) || x < 0) __builtin_trap();
        for (double x : c.per_token)
          if (!std::isfinite(x) || x < 0) __builtin_trap();
      }
  });
  return 0;
}
