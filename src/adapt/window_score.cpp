#include "adapt/window_score.h"

#include "core/error.h"

namespace wattmoe {

WindowScore score_window(Runner& run, const int32_t* ids, int S) {
  const ModelConfig& c = run.config();
  WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
  for (int t = 0; t <= S; ++t)
    WATTMOE_REQUIRE(ids[t] >= 0 && ids[t] < c.vocab_size, "token id {} at window position {} is outside [0, {})",
                    ids[t], t, c.vocab_size);
  run.forward(ids, 1, S);
  WindowScore w;
  w.nats = run.nll(ids + 1);
  w.tokens = S;
  w.entropy = run.mean_entropy();
  w.counts.assign(size_t(c.num_layers), {});
  int64_t pairs = 0, moe = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const Routing& r = run.routing(l);
    w.counts[size_t(l)].assign(r.counts.begin(), r.counts.end());
    for (int32_t n : r.counts) pairs += n;
    ++moe;
  }
  w.experts_per_token = moe ? double(pairs) / double(int64_t(S) * moe) : 0;
  return w;
}

}  // namespace wattmoe
