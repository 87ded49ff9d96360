#include "adapt/window_score.h"

#include "adapt/token_objectives.h"
#include "core/error.h"
#include "ops/loss.h"

namespace wattmoe {

WindowScore score_window(const Transformer<float>& model, const float* params, const int32_t* ids, int S,
                         const RouterSelect<float>& select, Activations<float>& acts) {
  const ModelConfig& c = model.config();
  WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
  for (int t = 0; t <= S; ++t)
    WATTMOE_REQUIRE(ids[t] >= 0 && ids[t] < c.vocab_size, "token id {} at window position {} is outside [0, {})",
                    ids[t], t, c.vocab_size);
  model.forward(params, ids, 1, S, acts, nullptr, select);
  WindowScore w;
  w.nats = ops::nll_loss<float>(acts.logits.data(), ids + 1, S, c.vocab_size, nullptr, 0);
  w.tokens = S;
  w.entropy = mean_entropy<float>(acts.logits.data(), S, c.vocab_size);
  w.counts.assign(size_t(c.num_layers), {});
  int64_t pairs = 0, moe = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const Routing& r = acts.layers[size_t(l)].routing;
    w.counts[size_t(l)].assign(r.counts.begin(), r.counts.end());
    for (int32_t n : r.counts) pairs += n;
    ++moe;
  }
  w.experts_per_token = moe ? double(pairs) / double(int64_t(S) * moe) : 0;
  return w;
}

}  // namespace wattmoe
