#include "gpu/evaluate_cuda.h"

namespace wattmoe::gpu {

template <class T>
EvalResult evaluate_cuda(TransformerCudaT<T>& model, const TokenStream& s, const EvalWindows& w,
                         const RouterSelect<float>& select, const RoutingObserver& observe) {
  BatchScorer scorer;
  scorer.score = [&](const int32_t* in, const int32_t* tg, int B, int len) {
    model.forward(in, B, len, select);
    const double nats = model.nll(tg, 0.0, /*want_grad=*/false);
    if (observe) observe_routing(model, observe);
    return nats;
  };
  scorer.routing = [&](int l) -> const Routing& { return model.routing(l).routing; };
  return evaluate_windows(model.config(), s, w, scorer);
}

template EvalResult evaluate_cuda<float>(TransformerCudaT<float>&, const TokenStream&, const EvalWindows&,
                                         const RouterSelect<float>&, const RoutingObserver&);
template EvalResult evaluate_cuda<bf16>(TransformerCudaT<bf16>&, const TokenStream&, const EvalWindows&,
                                        const RouterSelect<float>&, const RoutingObserver&);

}  // namespace wattmoe::gpu
