// Model-level routing policies: a custom RouterSelect decides the selection, the model derives the weights from the
// router probabilities of the selected experts, so gradients must flow through those weights whatever was selected.
// Checked in double against finite differences for: every token on expert 0 (the other experts get zero tokens),
// a variable-k policy with unused (-1) slots (some tokens get no routed expert at all), k = 0 (shared expert only),
// and k = E in reverse order.
#include "model_gradcheck.h"

namespace wattmoe::test {
namespace {

constexpr int kB = 2, kS = 5;

// Every token to one expert (k = 1): all the others get zero tokens.
RouterSelect<double> everything_to(int expert, int E) {
  return [expert, E](int, const double*, const double*, int64_t n, Routing& out) {
    out.reset(n, 1, E);
    for (int64_t t = 0; t < n; ++t) out.expert[size_t(t)] = expert;
    out.recount();
  };
}

// k = 2 slots, filled by a schedule of positions only (never the scores): by (t + layer) % 3, a token gets no expert
// (both slots -1), one expert in slot 0 (slot 1 unused), or — for odd t — one expert in slot 1 (slot 0 unused),
// for even t two experts.
RouterSelect<double> variable_k(int E) {
  return [E](int layer, const double*, const double*, int64_t n, Routing& out) {
    out.reset(n, 2, E);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t m = (t + layer) % 3;
      if (m == 1) out.expert[size_t(2 * t)] = int32_t((t * 3 + layer) % E);
      if (m == 2) out.expert[size_t(2 * t + 1)] = int32_t((t + 1) % E);
      if (m == 2 && t % 2 == 0) out.expert[size_t(2 * t)] = int32_t((t + 2) % E);
    }
    out.recount();
  };
}

// k = E, experts listed in reverse index order (the order of slots must not matter).
RouterSelect<double> all_reversed(int E) {
  return [E](int, const double*, const double*, int64_t n, Routing& out) {
    out.reset(n, E, E);
    for (int64_t t = 0; t < n; ++t)
      for (int s = 0; s < E; ++s) out.expert[size_t(t * E + s)] = E - 1 - s;
    out.recount();
  };
}

void run(const ModelConfig& c, const RouterSelect<double>& select, const char* name, double lb, double z,
         std::vector<double>* grads_out = nullptr) {
  SCOPED_TRACE(name);
  Transformer<double> m(c);
  const std::vector<double> p = random_params<double>(m.layout(), 500);
  const std::vector<int32_t> ids = random_ids(kB * kS, c.vocab_size, 501);
  const LossSpec spec{true, Objective::Nll, lb, z, select};
  grad_check(m, p, ids, kB, kS, spec);
  if (grads_out) {
    Activations<double> acts;
    std::vector<double> dlogits;
    eval_loss(m, p, ids, kB, kS, spec, acts, &dlogits, nullptr);
    grads_out->assign(p.size(), 0.0);
    m.backward(p.data(), ids.data(), dlogits.data(), acts, grads_out->data());
  }
}

double max_abs(const std::vector<double>& g, const ParamSpec& s) {
  double m = 0;
  for (int64_t i = 0; i < s.numel; ++i) m = std::max(m, std::abs(g[size_t(s.offset + i)]));
  return m;
}

TEST(PolicyGradcheck, EveryTokenOnExpertZero) {
  // Qwen2-MoE does not renormalise: the weight of expert 0 is p₀, so the router gets a gradient from the LM loss.
  const ModelConfig c = qwen2moe_config();
  std::vector<double> g;
  run(c, everything_to(0, c.num_experts), "qwen2moe, all on expert 0", 0.0, 0.0, &g);
  const ParamLayout L = ParamLayout::build(c);
  for (int e = 0; e < c.num_experts; ++e)
    for (const char* w : {"gate", "up", "down"}) {
      const ParamSpec* s = L.find(expert_name(c, 1, e, w));
      ASSERT_NE(s, nullptr);
      if (e == 0) {
        EXPECT_GT(max_abs(g, *s), 0.0) << s->name;
      } else {
        EXPECT_EQ(max_abs(g, *s), 0.0) << s->name << ": an expert with zero tokens must get exactly zero gradient";
      }
    }
  // Every router row moves (through the softmax normaliser), not only expert 0's.
  const ParamSpec* router = L.find("model.layers.1.mlp.gate.weight");
  ASSERT_NE(router, nullptr);
  for (int e = 0; e < c.num_experts; ++e) {
    double m = 0;
    for (int64_t j = 0; j < c.hidden_size; ++j) m = std::max(m, std::abs(g[size_t(router->offset + e * c.hidden_size + j)]));
    EXPECT_GT(m, 0.0) << "router row " << e;
  }
}

TEST(PolicyGradcheck, EveryTokenOnOneExpertWithRenormalisationAndAux) {
  // Mixtral renormalises: a single selected weight is identically 1, so the LM loss gives the router no gradient;
  // with the auxiliary losses on, the router gradient comes from them alone — still checked by finite differences.
  const ModelConfig c = mixtral_config();
  run(c, everything_to(c.num_experts - 1, c.num_experts), "mixtral, all on the last expert", 0.1, 0.05);
}

TEST(PolicyGradcheck, VariableKWithUnusedSlots) {
  run(mixtral_config(), variable_k(mixtral_config().num_experts), "mixtral variable k", 0.05, 0.01);
  run(qwen2moe_config(), variable_k(qwen2moe_config().num_experts), "qwen2moe variable k", 0.05, 0.01);
}

TEST(PolicyGradcheck, NoRoutedExpertAtAll) {
  // k = 0 slots: only the shared expert (Qwen2-MoE) contributes; the router still gets the auxiliary gradients.
  const ModelConfig c = qwen2moe_config();
  const RouterSelect<double> none = [E = c.num_experts](int, const double*, const double*, int64_t n, Routing& out) {
    out.reset(n, 0, E);
  };
  run(c, none, "qwen2moe k = 0", 0.05, 0.01);
}

TEST(PolicyGradcheck, AllExpertsInReverseOrder) {
  const ModelConfig c = olmoe_config(2, 0.0);  // no clip: this test is about routing
  run(c, all_reversed(c.num_experts), "olmoe k = E reversed", 0.05, 0.01);
}

}  // namespace
}  // namespace wattmoe::test
