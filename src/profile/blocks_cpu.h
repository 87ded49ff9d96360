// The blocks of `wattmoe profile --device cpu`: attention, router, routed and shared experts of one layer on the
// CPU reference ops (fp32, OpenBLAS), on fixed random activations x [T,H] (uniform, std 1). Attention is the
// q/k/v/o projections plus causal attention over the T tokens (ops::attention_fwd), without RoPE or norms.
#pragma once
#include <cstdint>
#include <vector>

#include "profile/model_blocks.h"
#include "model/config.h"
#include "model/params.h"

namespace wattmoe {

// A flat fp32 parameter buffer of ParamLayout::build(c) with random values: each matrix W[out, in] uniform with
// std 1/√in, vectors (norms, biases) 1. Deterministic in `seed`.
std::vector<float> random_params(const ModelConfig& c, uint64_t seed);

class CpuBlockExecutor : public BlockExecutor {
 public:
  // params: ParamLayout::build(c) order; the caller keeps it alive.
  CpuBlockExecutor(const ModelConfig& c, const float* params, int max_tokens, uint64_t seed);
  void attention(int layer, int tokens) override;
  void router(int layer, int tokens) override;
  void expert(int layer, int expert, int tokens) override;
  void shared(int layer, int tokens) override;

 private:
  void ffn(const FfnView<float>& f, int ffn_width, int tokens);
  void check_tokens(int tokens) const;

  ModelConfig c_;
  ParamLayout layout_;
  ModelView<float> view_;
  int max_tokens_;
  std::vector<float> x_, g_, u_, h_, out_, q_, k_, v_, attn_;
};

}  // namespace wattmoe
