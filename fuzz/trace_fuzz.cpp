// Replay traces (energy/trace.h), JSONL or CSV (WATTMOE_FUZZ_CSV): parse, times never go backwards, and the energy
// total over them is never negative.
#include <cmath>

#include "energy/trace.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattmoe::fuzz::accept_or_refuse([&] {
    const auto samples = wattmoe::parse_trace(wattmoe::fuzz::text(data, size), WATTMOE_FUZZ_CSV, "trace");
    wattmoe::CounterTotal total;
    total.wrap_j = 1000;
    for (size_t i = 0; i < samples.size(); ++i) {
      if (i > 0 && !(samples[i].time_s >= samples[i - 1].time_s)) __builtin_trap();
      total.add(samples[i].energy_j, samples[i].time_s);
    }
    if (total.joules < 0) __builtin_trap();
  });
  return 0;
}
