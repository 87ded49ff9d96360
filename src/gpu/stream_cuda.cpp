#include "gpu/stream_cuda.h"

#include <vector>

#include "core/error.h"
#include "core/timer.h"

namespace wattmoe::gpu {

template <class T>
StreamResult run_stream_cuda(TransformerCudaT<T>& model, const TokenStream& s, const StreamOptions& opt,
                             StreamControl control, const WindowCallback& callback, const RoutingObserver& observe) {
  const ModelConfig& c = model.config();
  std::vector<int32_t> targets;
  return run_stream_with(s, opt, std::move(control), callback, [&](const int32_t* ids, int S, StreamControl& ctl) {
    Timer t;
    WATTMOE_REQUIRE(S >= 1, "a window needs at least 2 tokens (S >= 1), got S = {}", S);
    for (int i = 0; i <= S; ++i)  // as score_window: the targets too (forward checks only its inputs)
      WATTMOE_REQUIRE(ids[i] >= 0 && ids[i] < c.vocab_size, "token id {} at window position {} is outside [0, {})",
                      ids[i], i, c.vocab_size);
    model.forward(ids, 1, S, ctl.select);
    targets.assign(ids + 1, ids + 1 + S);
    WindowOutcome w;
    w.nats = model.nll(targets.data(), 0.0, /*want_grad=*/false);
    w.tokens = S;
    w.entropy = model.objective(Objective::Entropy, /*want_grad=*/false);  // mean over the S rows, as mean_entropy
    if (observe) observe_routing(model, observe);
    w.counts.assign(size_t(c.num_layers), {});
    int64_t pairs = 0, moe = 0;
    for (int l = 0; l < c.num_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      const Routing& r = model.routing(l).routing;
      w.counts[size_t(l)].assign(r.counts.begin(), r.counts.end());
      for (int32_t n : r.counts) pairs += n;
      ++moe;
    }
    w.experts_per_token = moe ? double(pairs) / double(int64_t(S) * moe) : 0;
    w.infer_seconds = t.seconds();
    return w;
  });
}

template StreamResult run_stream_cuda<float>(TransformerCudaT<float>&, const TokenStream&, const StreamOptions&,
                                             StreamControl, const WindowCallback&, const RoutingObserver&);
template StreamResult run_stream_cuda<bf16>(TransformerCudaT<bf16>&, const TokenStream&, const StreamOptions&,
                                            StreamControl, const WindowCallback&, const RoutingObserver&);

}  // namespace wattmoe::gpu
