#include "train/data.h"

#include "core/error.h"
#include "core/rng.h"

namespace wattmoe {

void sample_windows(const TokenStream& s, int B, int seq, uint64_t seed, int64_t step, int micro,
                    std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
  const int64_t n = int64_t(s.tokens.size()) - seq - 1;
  WATTMOE_CHECK(n >= 0);
  Rng rng(seed * 0x9E3779B97F4A7C15ull + uint64_t(step) * 1000003ull + uint64_t(micro));
  inputs.resize(size_t(B) * seq);
  targets.resize(size_t(B) * seq);
  for (int b = 0; b < B; ++b) {
    const int64_t off = int64_t(rng.below(uint64_t(n + 1)));
    for (int t = 0; t < seq; ++t) {
      inputs[size_t(b) * seq + t] = s.tokens[size_t(off + t)];
      targets[size_t(b) * seq + t] = s.tokens[size_t(off + t + 1)];
    }
  }
}

}  // namespace wattmoe
