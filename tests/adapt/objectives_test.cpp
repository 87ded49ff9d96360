// Finite-difference checks (double) of every test-time objective's gradient, at the level of its inputs (logits,
// router logits, parameters) and end to end through the model's masked backward.
#include <gtest/gtest.h>

#include <cmath>

#include "adapt/adapt_loss.h"
#include "adapt/anchor.h"
#include "adapt/param_groups.h"
#include "adapt/router_objectives.h"
#include "ops/token_objectives.h"
#include "adapt_test_util.h"
#include "core/rng.h"
#include "ops/softmax.h"

namespace wattmoe::test {
namespace {

// FD in double with h = 1e-6: truncation ~h²·|f'''| ≈ 1e-12, rounding ~1e-16·|f|/h ≈ 1e-10; a wrong term is O(1e-2).
constexpr double kH = 1e-6, kTol = 1e-7;

std::vector<double> random_logits(int64_t rows, int64_t V, uint64_t seed, bool varied_sharpness) {
  Rng rng(seed);
  std::vector<double> x(size_t(rows * V));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < V; ++j)
      x[size_t(i * V + j)] = (varied_sharpness ? 0.5 + 1.5 * double(i) : 1.0) * rng.normal();
  return x;
}

// Expects analytic == fd over every coordinate of x (normalised by the largest |fd|).
void expect_gradient(std::vector<double>& x, const std::vector<double>& analytic, const std::function<double()>& f) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double fd = central_difference(f, x[i], kH);
    worst = std::max(worst, std::abs(fd - analytic[i]));
    scale = std::max(scale, std::abs(fd));
  }
  ASSERT_GT(scale, 1e-4) << "degenerate test: the gradient is ~0";
  EXPECT_LE(worst / scale, kTol);
}

TEST(AdaptObjectives, NextTokenNllGradientAccumulates) {
  const int64_t rows = 6, V = 7;
  std::vector<double> x = random_logits(rows, V, 1, false);
  const std::vector<int32_t> targets = {3, 0, -1, 6, 2, 2};
  const double w = 0.7;
  std::vector<double> d(x.size(), 0.25);  // pre-filled: the objective must add, not overwrite
  const double v = next_token_nll<double>(x.data(), targets.data(), rows, V, w, d.data());
  for (double& e : d) e -= 0.25;
  for (int64_t j = 0; j < V; ++j) EXPECT_EQ(d[size_t(2 * V + j)], 0.0) << "a skipped row gets no gradient";
  std::vector<double> g(d.size());
  for (size_t i = 0; i < d.size(); ++i) g[i] = d[i] / w;
  auto f = [&] { return next_token_nll<double>(x.data(), targets.data(), rows, V, 1.0, nullptr); };
  EXPECT_DOUBLE_EQ(v, f());
  expect_gradient(x, g, f);
  // Mean over the 5 scored rows of −log softmax: check one value by hand.
  double ref = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (targets[size_t(i)] < 0) continue;
    double lse = 0;
    for (int64_t j = 0; j < V; ++j) lse += std::exp(x[size_t(i * V + j)]);
    ref += std::log(lse) - x[size_t(i * V + targets[size_t(i)])];
  }
  EXPECT_NEAR(v, ref / 5, 1e-12);
}

TEST(AdaptObjectives, GatedEntropyWeightsAndGradient) {
  const int64_t rows = 8, V = 9;
  std::vector<double> x = random_logits(rows, V, 2, true);  // later rows sharper (lower entropy)
  std::vector<double> H(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<double> one(x.begin() + i * V, x.begin() + (i + 1) * V);
    H[size_t(i)] = mean_entropy<double>(one.data(), 1, V);
  }
  std::vector<double> sorted = H;
  std::sort(sorted.begin(), sorted.end());
  const double gate = 0.5 * (sorted[3] + sorted[4]);  // half the rows pass
  int64_t kept = 0;
  const std::vector<double> w = gate_weights<double>(x.data(), rows, V, gate, &kept);
  EXPECT_EQ(kept, 4);
  double sum = 0;
  int a = -1, b = -1;
  for (int64_t i = 0; i < rows; ++i) {
    if (H[size_t(i)] > gate) {
      EXPECT_EQ(w[size_t(i)], 0.0) << "row " << i << " is above the gate";
      continue;
    }
    EXPECT_GT(w[size_t(i)], 0.0);
    sum += w[size_t(i)];
    (a < 0 ? a : b) = int(i);
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
  // w ∝ exp(gate − H): the ratio of two kept rows is exp(H_b − H_a).
  EXPECT_NEAR(w[size_t(a)] / w[size_t(b)], std::exp(H[size_t(b)] - H[size_t(a)]), 1e-9);

  // With the weights held (stop-gradient), the gradient matches finite differences of Σ w_t H_t.
  std::vector<double> d(x.size(), 0.0);
  double kept_fraction = 0;
  const double v = gated_entropy<double>(x.data(), rows, V, gate, 1.0, d.data(), &kept_fraction);
  EXPECT_DOUBLE_EQ(kept_fraction, 0.5);
  double ref = 0;
  for (int64_t i = 0; i < rows; ++i) ref += w[size_t(i)] * H[size_t(i)];
  EXPECT_NEAR(v, ref, 1e-12);
  for (int64_t i = 0; i < rows; ++i) {
    if (H[size_t(i)] <= gate) continue;
    for (int64_t j = 0; j < V; ++j) EXPECT_EQ(d[size_t(i * V + j)], 0.0);
  }
  expect_gradient(x, d, [&] { return weighted_entropy<double>(x.data(), rows, V, w, 1.0, nullptr); });

  // Nothing passes a tiny gate: value 0, no gradient.
  std::vector<double> d0(x.size(), 0.0);
  EXPECT_EQ(gated_entropy<double>(x.data(), rows, V, 1e-9, 1.0, d0.data()), 0.0);
  for (double e : d0) EXPECT_EQ(e, 0.0);
  EXPECT_NEAR(default_entropy_gate(256), 0.4 * std::log(256.0), 1e-15);
}

// Activations with only router logits/probs filled: layers 0 and 2 MoE, layer 1 dense.
struct RouterActs {
  Activations<double> acts;
  int64_t N, E;
  RouterActs(int64_t n, int64_t e, uint64_t seed) : N(n), E(e) {
    acts.B = 1, acts.S = int(n);
    acts.layers.resize(3);
    Rng rng(seed);
    for (int l : {0, 2}) {
      auto& a = acts.layers[size_t(l)];
      a.router_logits.resize(size_t(N * E));
      for (double& z : a.router_logits) z = 1.5 * rng.normal();
    }
    refresh();
  }
  RouterViews<double> views() {
    RouterViews<double> v;
    v.tokens = N, v.experts = int(E), v.top_k = 2;
    v.layers.resize(acts.layers.size());
    for (size_t l = 0; l < acts.layers.size(); ++l) {
      auto& a = acts.layers[l];
      if (!a.router_logits.empty()) v.layers[l] = {a.router_logits.data(), a.router_probs.data(), a.drouter.data()};
    }
    return v;
  }
  void refresh() {
    for (auto& a : acts.layers) {
      if (a.router_logits.empty()) continue;
      a.router_probs.assign(a.router_logits.size(), 0.0);
      ops::softmax_fwd<double>(a.router_logits.data(), a.router_probs.data(), N, E);
      a.drouter.assign(a.router_logits.size(), 0.0);
    }
  }
};

void expect_router_gradient(RouterActs& ra, const std::function<double(const RouterViews<double>&, double)>& obj) {
  ra.refresh();
  const double w = 1.3;
  obj(ra.views(), w);
  const std::vector<double> d0 = ra.acts.layers[0].drouter, d2 = ra.acts.layers[2].drouter;
  for (int l : {0, 2}) {
    std::vector<double> g = l == 0 ? d0 : d2;
    for (double& e : g) e /= w;
    auto& z = ra.acts.layers[size_t(l)].router_logits;
    expect_gradient(z, g, [&] {
      ra.refresh();
      return obj(ra.views(), 0.0);
    });
  }
  EXPECT_TRUE(ra.acts.layers[1].drouter.empty()) << "dense layers are skipped";
}

TEST(AdaptObjectives, ExpectedExpertEnergyGradient) {
  RouterActs ra(5, 4, 3);
  // Per layer: fixed costs at 2 tokens per step (per-token 1, 2, 0.5, 4), then per-pair costs.
  const std::vector<float> zero(4, 0.f);
  const EnergyCosts costs{{ExpertCosts{{2, 4, 1, 8}, zero}, ExpertCosts{zero, {9, 9, 9, 9}},
                           ExpertCosts{zero, {0.1f, 0.3f, 0.2f, 0.05f}}},
                          2};
  validate_energy_costs(costs, 3, 4);
  expect_router_gradient(ra, [&](const RouterViews<double>& v, double w) { return expected_expert_energy(v, costs, w); });
  // Uniform costs normalise to 1: value 1, no gradient; zero costs: value 0.
  ra.refresh();
  EXPECT_NEAR(expected_expert_energy(ra.views(), per_pair_costs({3, 3, 3, 3}), 1.0), 1.0, 1e-12);
  for (double e : ra.acts.layers[0].drouter) EXPECT_NEAR(e, 0.0, 1e-15);
  EXPECT_EQ(expected_expert_energy(ra.views(), per_pair_costs({0, 0, 0, 0}), 1.0), 0.0);
  // ExpertCosts → per-token costs a/n + b; the objective prices with exactly those.
  const ExpertCosts ab{{4, 0, 2, 6}, {1, 2, 0, 1}};
  const std::vector<double> pt = per_token_cost(ab, 2);
  ASSERT_EQ(pt.size(), 4u);
  EXPECT_DOUBLE_EQ(pt[0], 3.0);
  EXPECT_DOUBLE_EQ(pt[1], 2.0);
  ra.refresh();
  EXPECT_EQ(expected_expert_energy(ra.views(), EnergyCosts{{ab}, 2}, 0.0),
            expected_expert_energy(ra.views(), per_pair_costs({3, 2, 1, 4}), 0.0));
}

TEST(AdaptObjectives, RouterEntropyGradient) {
  RouterActs ra(6, 5, 4);
  expect_router_gradient(ra, [](const RouterViews<double>& v, double w) { return router_entropy(v, w); });
  ra.refresh();
  // Equal logits: entropy ln E.
  for (int l : {0, 2}) std::fill(ra.acts.layers[size_t(l)].router_logits.begin(), ra.acts.layers[size_t(l)].router_logits.end(), 0.3);
  ra.refresh();
  EXPECT_NEAR(router_entropy(ra.views(), 0.0), std::log(5.0), 1e-12);
}

TEST(AdaptObjectives, AnchorGradientOnlyInRanges) {
  Rng rng(6);
  std::vector<double> p(20), p0(20);
  for (size_t i = 0; i < p.size(); ++i) p[i] = rng.normal(), p0[i] = rng.normal();
  const std::vector<ParamRange> ranges = {{2, 5}, {10, 4}};
  std::vector<double> g(p.size(), 7.0);
  const double w = 0.4;
  const double v = l2_anchor<double>(p.data(), p0.data(), ranges, w, g.data());
  std::vector<double> a(p.size(), 0.0);
  for (size_t i = 0; i < p.size(); ++i) {
    const bool in = (i >= 2 && i < 7) || (i >= 10 && i < 14);
    if (!in) {
      EXPECT_EQ(g[i], 7.0) << "element " << i << " outside the ranges was touched";
    }
    a[i] = (g[i] - 7.0) / w;
  }
  auto f = [&] { return l2_anchor<double>(p.data(), p0.data(), ranges, 0.0, nullptr); };
  EXPECT_DOUBLE_EQ(v, f());
  expect_gradient(p, a, f);
}

// L(θ) = adapt_loss(nll, energy, router entropy, load balance, z) + anchor, through the model's masked backward
// (router, norms, LoRA trainable), against central differences on trainable coordinates.
void end_to_end_check(ModelConfig c) {
  c.lora_rank = 2, c.lora_scale = 0.5f;
  Transformer<double> m(c);
  const ParamLayout& layout = m.layout();
  std::vector<double> p = random_params<double>(layout, 11);  // LoRA B non-zero
  std::vector<double> p0 = p;
  Rng rng(12);
  for (double& x : p0) x += 0.05 * rng.normal();
  const ParamGroups groups = parse_param_groups("router,norms,lora");
  const auto ranges = trainable_ranges(groups, c, layout);
  const GradMask mask = make_grad_mask(groups, c, layout);
  const int S = 7;
  const std::vector<int32_t> ids = random_ids(S + 1, c.vocab_size, 13);
  ObjectiveWeights w;
  w.nll = 1, w.energy = 0.5, w.router_entropy = 0.3, w.load_balance = 0.1, w.z = 0.01, w.anchor = 0.2;
  EnergyCosts costs{std::vector<ExpertCosts>(size_t(c.num_layers)), 1};
  for (ExpertCosts& row : costs.layers) {
    row.fixed.assign(size_t(c.num_experts), 0.f);
    for (int e = 0; e < c.num_experts; ++e) row.per_token.push_back(float(0.1 + rng.uniform()));
  }
  Activations<double> acts;
  std::vector<double> dlogits;
  auto loss = [&](std::vector<int32_t>* route) {
    m.forward(p.data(), ids.data(), 1, S, acts);
    const LossComponents lc = adapt_loss_terms<double>(acts.logits.data(), acts.tokens(), c.vocab_size,
                                                       router_views(acts, c), ids.data() + 1, w, &costs, dlogits);
    if (route) {
      route->clear();
      for (const auto& a : acts.layers) route->insert(route->end(), a.routing.expert.begin(), a.routing.expert.end());
    }
    return lc.total + w.anchor * l2_anchor<double>(p.data(), p0.data(), ranges, 0.0, nullptr);
  };
  std::vector<int32_t> base_route, r;
  const double L = loss(&base_route);
  EXPECT_TRUE(std::isfinite(L));
  std::vector<double> grads(p.size(), 0.0);
  l2_anchor<double>(p.data(), p0.data(), ranges, w.anchor, grads.data());
  m.backward(p.data(), ids.data(), dlogits.data(), acts, grads.data(), &mask);
  int checked = 0, skipped = 0;
  double worst = 0, scale = 0;
  std::string worst_at;
  std::map<ParamKind, int> per_kind;
  for (const ParamSpec& s : layout.specs()) {
    const bool trainable = in_param_groups(groups, c, s);
    for (int64_t j = 0; j < s.numel; j += std::max<int64_t>(1, s.numel / 6)) {
      const int64_t i = s.offset + j;
      if (!trainable) {
        EXPECT_EQ(grads[size_t(i)], 0.0) << s.name << " is frozen";
        continue;
      }
      double x0 = p[size_t(i)];
      p[size_t(i)] = x0 + kH;
      const double lp = loss(&r);
      const bool same_p = r == base_route;
      p[size_t(i)] = x0 - kH;
      const double lm = loss(&r);
      const bool same_m = r == base_route;
      p[size_t(i)] = x0;
      if (!same_p || !same_m) {
        ++skipped;
        continue;
      }
      const double fd = (lp - lm) / (2 * kH);
      if (std::abs(fd - grads[size_t(i)]) > worst) worst_at = s.name + "[" + std::to_string(j) + "]";
      worst = std::max(worst, std::abs(fd - grads[size_t(i)]));
      scale = std::max(scale, std::abs(fd));
      ++checked, ++per_kind[s.kind];
    }
  }
  EXPECT_GT(per_kind[ParamKind::Router], 0);
  EXPECT_GT(per_kind[ParamKind::Norm], 0);
  EXPECT_GT(per_kind[ParamKind::Lora], 0);
  EXPECT_LE(skipped, checked / 10);
  EXPECT_LE(worst / scale, 1e-6) << "worst |analytic − fd| " << worst << " of " << scale << " at " << worst_at;
}

TEST(AdaptObjectives, EndToEndMaskedBackwardMixtral) { end_to_end_check(mixtral_config(2)); }
TEST(AdaptObjectives, EndToEndMaskedBackwardQwen2MoeDenseAndShared) { end_to_end_check(qwen2moe_config(2)); }

TEST(AdaptObjectives, BadWeightsAndCostsAreErrors) {
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected an Error mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  ObjectiveWeights w;
  w.entropy = -1;
  expect_error([&] { validate_objective_weights(w); }, "entropy");
  w = {};
  w.entropy_gate = 0.0;
  expect_error([&] { validate_objective_weights(w); }, "entropy_gate");
  w.entropy_gate = -2.0;
  expect_error([&] { validate_objective_weights(w); }, "entropy_gate");
  w = {};
  w.nll = 0;
  expect_error([&] { validate_objective_weights(w); }, "all zero");
  w = {};
  w.energy = NAN;
  expect_error([&] { validate_objective_weights(w); }, "energy");
  std::vector<double> x(4, 0.0);
  expect_error([&] { gate_weights<double>(x.data(), 1, 4, 0.0); }, "entropy_gate");
  expect_error([&] { validate_energy_costs(per_pair_costs({1, 2}), 2, 4); }, "expected 4 experts");
  expect_error([&] { validate_energy_costs(per_pair_costs({1, 2, 3, -1}), 2, 4); }, ">= 0");
  const ExpertCosts row = per_pair_costs({1, 2, 3, 4}).layers[0];
  expect_error([&] { validate_energy_costs(EnergyCosts{{row, row, row}, 1}, 2, 4); }, "one row per layer");
  expect_error([&] { validate_energy_costs(EnergyCosts{{row}, 0}, 2, 4); }, "tokens_per_step");
}

}  // namespace
}  // namespace wattmoe::test
