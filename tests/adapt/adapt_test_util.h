// Helpers shared by the adaptation tests: tiny random MoE models (tests/moe/model_gradcheck.h configs) in float,
// token streams, and a central-difference derivative.
#pragma once
#include <cmath>
#include <functional>
#include <vector>

#include "../moe/model_gradcheck.h"
#include "adapt/router_objectives.h"
#include "adapt/window_score.h"
#include "model/lora.h"
#include "model/runner.h"
#include "text/token_stream.h"

namespace wattmoe::test {

// A float Mixtral-shaped model (2 layers, 4 experts, top-2, V = 29) with random weights.
struct TinyModel {
  ModelConfig config;
  std::vector<float> params;
};
inline TinyModel tiny_model(uint64_t seed = 5, int layers = 2) {
  TinyModel m;
  m.config = mixtral_config(layers);
  m.params = random_params<float>(ParamLayout::build(m.config), seed);
  return m;
}

// A byte-like stream of n random ids (bytes = tokens).
inline TokenStream random_stream(int64_t n, int vocab, uint64_t seed) {
  TokenStream s;
  s.path = "random";
  s.tokens = random_ids(int(n), vocab, seed);
  s.bytes = n;
  return s;
}

// A stream that repeats one short random motif (easy to predict once learned).
inline TokenStream motif_stream(int64_t n, int vocab, int motif, uint64_t seed) {
  TokenStream s = random_stream(n, vocab, seed);
  const std::vector<int32_t> m = random_ids(motif, vocab, seed + 1);
  for (int64_t i = 0; i < n; ++i) s.tokens[size_t(i)] = m[size_t(i % motif)];
  return s;
}

// A CPU runner holding params (ParamLayout::build(c) order).
inline std::unique_ptr<Runner> cpu_runner(const ModelConfig& c, const float* params) {
  std::unique_ptr<Runner> r = make_runner(c, {});
  r->set_params(params);
  return r;
}

// Σ −log p of a window (ids: S + 1 tokens) scored by a fresh CPU runner with these weights and the model's top-k.
inline double score_nats(const ModelConfig& c, const float* params, const int32_t* ids, int S) {
  return score_window(*cpu_runner(c, params), ids, S).nats;
}

inline double central_difference(const std::function<double()>& f, double& x, double h) {
  const double x0 = x;
  x = x0 + h;
  const double fp = f();
  x = x0 - h;
  const double fm = f();
  x = x0;
  return (fp - fm) / (2 * h);
}

// Energy-objective costs with only per-pair costs b_e (a_e = 0), one row every layer shares: c_e = b_e whatever the
// tokens per step.
inline EnergyCosts per_pair_costs(std::vector<float> b) {
  ExpertCosts c;
  c.fixed.assign(b.size(), 0.f);
  c.per_token = std::move(b);
  return EnergyCosts{{std::move(c)}, 1};
}

}  // namespace wattmoe::test
