// Whole-model gradient check in double against central finite differences, for each architecture (small random
// configs built directly: Mixtral with GQA, OLMoE with q/k norm and clip_qkv, Qwen2-MoE with a shared expert, a dense
// layer, q/k/v biases and tied embeddings), for the entropy and nll objectives plus the router auxiliary losses
// (load-balancing and z-loss coefficients non-zero), and for the auxiliary losses alone.
// See tests/moe/model_gradcheck.h for the coordinates sampled, the tolerance and how kinks are handled.
#include <iostream>

#include "../moe/model_gradcheck.h"

namespace wattmoe::test {
namespace {

constexpr int kB = 2, kS = 5;

// Picks clip_qkv so that some q/k/v entries are clamped and none lies within 1e-4 of ±clip (FD with h = 1e-6 then
// never crosses a clamp kink at the base point; coordinates that still do are skipped by the check).
void choose_clip(ModelConfig& c, const std::vector<double>& p, const std::vector<int32_t>& ids) {
  for (double clip : {1.0, 0.9, 1.1, 0.8, 1.2, 0.95, 1.05, 0.85, 1.15}) {
    c.clip_qkv = clip;
    Transformer<double> m(c);
    Activations<double> acts;
    m.forward(p.data(), ids.data(), kB, kS, acts);
    double frac = 0;
    const double margin = clip_margin(c, acts, &frac);
    if (margin >= 1e-4 && frac > 0.05 && frac < 0.6) {
      std::cout << "clip_qkv " << clip << ": " << frac * 100 << "% of q/k/v clamped, margin " << margin << "\n";
      return;
    }
  }
  FAIL() << "no clip_qkv candidate clamps some values with a 1e-4 margin";
}

void check_arch(const NamedConfig& nc) {
  SCOPED_TRACE(nc.name);
  ModelConfig c = nc.config;
  c.validate(nc.name);
  const ParamLayout layout = ParamLayout::build(c);
  const std::vector<double> p = random_params<double>(layout, 1000 + uint64_t(c.arch));
  const std::vector<int32_t> ids = random_ids(kB * kS, c.vocab_size, 2000 + uint64_t(c.arch));
  if (c.clip_qkv > 0) {
    choose_clip(c, p, ids);
    if (::testing::Test::HasFatalFailure()) return;
  }
  Transformer<double> m(c);

  struct Named {
    const char* name;
    LossSpec spec;
  };
  const Named specs[] = {
      {"entropy+aux", {true, Objective::Entropy, 0.05, 0.01, nullptr}},
      {"nll+aux", {true, Objective::Nll, 0.05, 0.01, nullptr}},
      {"aux only", {false, Objective::Entropy, 1.0, 0.1, nullptr}},
  };
  for (const Named& s : specs) {
    SCOPED_TRACE(s.name);
    const GradCheckResult r = grad_check(m, p, ids, kB, kS, s.spec);
    std::cout << nc.name << " " << s.name << ": " << r.checked << " coordinates checked, " << r.skipped
              << " skipped;";
    for (const auto& [k, e] : r.err_by_kind) std::cout << " " << k << " " << e;
    std::cout << "\n";
  }
}

TEST(ModelGradcheck, Mixtral) { check_arch({"mixtral_gqa", mixtral_config()}); }
TEST(ModelGradcheck, Olmoe) { check_arch({"olmoe_clip", olmoe_config()}); }
TEST(ModelGradcheck, Qwen2Moe) { check_arch({"qwen2moe_shared_dense", qwen2moe_config()}); }

// The configs really exercise what they claim (so the checks above cover those paths).
TEST(ModelGradcheck, ConfigsCoverTheirFeatures) {
  const ModelConfig q = qwen2moe_config();
  EXPECT_FALSE(q.is_moe_layer(0));
  EXPECT_TRUE(q.is_moe_layer(1));
  const ParamLayout lq = ParamLayout::build(q);
  EXPECT_NE(lq.find("model.layers.1.mlp.shared_expert_gate.weight"), nullptr);
  EXPECT_NE(lq.find("model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(lq.find("lm_head.weight"), nullptr);  // tied
  const ModelConfig m = mixtral_config();
  EXPECT_NE(m.head_dim * m.num_heads, m.hidden_size);
  EXPECT_LT(m.num_kv_heads, m.num_heads);
  EXPECT_NE(ParamLayout::build(olmoe_config()).find("model.layers.1.self_attn.k_norm.weight"), nullptr);
}

}  // namespace
}  // namespace wattmoe::test
