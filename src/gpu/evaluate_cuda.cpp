#include "gpu/evaluate_cuda.h"

namespace wattmoe::gpu {

EvalResult evaluate_cuda(TransformerCuda& model, const TokenStream& s, int seq, int batch, int64_t max_tokens,
                         const RouterSelect<float>& select) {
  BatchScorer scorer;
  scorer.score = [&](const int32_t* in, const int32_t* tg, int B, int len) {
    model.forward(in, B, len, select);
    return model.nll(tg, 0.0, /*want_grad=*/false);
  };
  scorer.routing = [&](int l) -> const Routing& { return model.routing(l).routing; };
  return evaluate_windows(model.config(), s, seq, batch, max_tokens, scorer);
}

}  // namespace wattmoe::gpu
