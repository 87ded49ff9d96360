// Masked backward (model/grad_mask.h): for each architecture (with LoRA adapters, B ≠ 0, and the router
// auxiliary losses on) and each mask — router only, norms only, LoRA only, router+norms+LoRA, top layer only,
// embedding only, lm_head/final norm only, base experts of one layer, all, none — every needed tensor's
// gradient is bitwise the full backward's, and every other tensor's region keeps the sentinel it held before.
// GradMask::all equals no mask, and lowest_layer reports how deep the pass must go.
#include <cstring>

#include "../moe/model_gradcheck.h"

namespace wattmoe::test {
namespace {

constexpr int kB = 2, kS = 9, kLayers = 3;
constexpr float kSentinel = 12345.f;

struct Case {
  ModelConfig config;
  std::vector<float> params;
  std::vector<int32_t> ids;
};

Case make_case(ModelConfig c, uint64_t seed) {
  c.lora_rank = 2, c.lora_scale = 0.5f;
  c.validate("test");
  const ParamLayout L = ParamLayout::build(c);
  return {c, random_params<float>(L, seed), random_ids(kB * kS, c.vocab_size, seed + 1)};
}

// Forward, nll + aux losses (so drouter is non-zero), backward with `mask` into grads that start at `init`.
std::vector<float> run(const Transformer<float>& m, const Case& k, const GradMask* mask,
                       std::vector<float> grads) {
  Activations<float> acts;
  m.forward(k.params.data(), k.ids.data(), kB, kS, acts);
  std::vector<float> dlogits(acts.logits.size());
  objective_loss<float>(Objective::Nll, acts.logits.data(), k.ids.data(), kB, kS, k.config.vocab_size,
                        dlogits.data());
  m.router_aux_losses(acts, 0.02, 0.003);
  m.backward(k.params.data(), k.ids.data(), dlogits.data(), acts, grads.data(), mask);
  return grads;
}

struct NamedMask {
  std::string name;
  std::function<bool(const ParamSpec&)> pred;
};

std::vector<NamedMask> masks(int layers) {
  auto is = [](ParamKind k) { return [k](const ParamSpec& s) { return s.kind == k; }; };
  return {
      {"router", is(ParamKind::Router)},
      {"norms", is(ParamKind::Norm)},
      {"lora", is(ParamKind::Lora)},
      {"router+norms+lora",
       [](const ParamSpec& s) {
         return s.kind == ParamKind::Router || s.kind == ParamKind::Norm || s.kind == ParamKind::Lora;
       }},
      {"top layer", [layers](const ParamSpec& s) { return s.layer == layers - 1; }},
      {"top layer lora + final norm",
       [layers](const ParamSpec& s) {
         return (s.layer == layers - 1 && s.kind == ParamKind::Lora) || s.name == "model.norm.weight";
       }},
      {"middle layer experts (base)",
       [](const ParamSpec& s) { return s.layer == 1 && s.kind == ParamKind::Expert; }},
      {"shared expert gate", is(ParamKind::SharedGate)},
      {"embedding", is(ParamKind::Embedding)},
      {"lm_head + final norm",
       [](const ParamSpec& s) { return s.kind == ParamKind::LmHead || s.name == "model.norm.weight"; }},
      {"attention", is(ParamKind::Attention)},
      {"all", [](const ParamSpec&) { return true; }},
      {"none", [](const ParamSpec&) { return false; }},
  };
}

void check_arch(const NamedConfig& nc) {
  SCOPED_TRACE(nc.name);
  const Case k = make_case(nc.config, 50 + uint64_t(nc.config.arch));
  const Transformer<float> m(k.config);
  const ParamLayout& L = m.layout();
  const std::vector<float> full = run(m, k, nullptr, std::vector<float>(k.params.size(), 0.f));
  for (const float g : full) ASSERT_TRUE(std::isfinite(g));

  for (const NamedMask& nm : masks(kLayers)) {
    SCOPED_TRACE(nm.name);
    const GradMask mask = GradMask::select(L, nm.pred);
    // Needed regions start at 0 (as the full run's did), the rest at the sentinel.
    std::vector<float> init(k.params.size(), kSentinel);
    for (size_t i = 0; i < L.specs().size(); ++i)
      if (mask.needs[i]) std::fill_n(init.begin() + L.specs()[i].offset, L.specs()[i].numel, 0.f);
    const std::vector<float> got = run(m, k, &mask, init);
    int needed = 0;
    for (size_t i = 0; i < L.specs().size(); ++i) {
      const ParamSpec& s = L.specs()[i];
      const float* g = &got[size_t(s.offset)];
      if (mask.needs[i]) {
        ++needed;
        EXPECT_EQ(std::memcmp(g, &full[size_t(s.offset)], sizeof(float) * size_t(s.numel)), 0)
            << s.name << " differs from the full backward";
      } else {
        for (int64_t j = 0; j < s.numel; ++j)
          if (g[j] != kSentinel) {
            ADD_FAILURE() << s.name << "[" << j << "] was written (" << g[j] << ") though not needed";
            break;
          }
      }
    }
    EXPECT_EQ(needed > 0, mask.any());
    // Every mask but "none" (and "shared expert gate" without a shared expert) needs something here.
    if (nm.name != "none" &&
        !(nm.name == "shared expert gate" && k.config.shared_expert_intermediate_size == 0)) {
      EXPECT_GT(needed, 0);
    }
  }

  // GradMask::all is exactly the unmasked backward, over the whole buffer.
  const GradMask all = GradMask::all(L);
  const std::vector<float> got = run(m, k, &all, std::vector<float>(k.params.size(), 0.f));
  EXPECT_EQ(std::memcmp(got.data(), full.data(), sizeof(float) * full.size()), 0);
}

TEST(GradMask, MixtralNeededGradsBitwiseOthersUntouched) {
  check_arch({"mixtral", mixtral_config(kLayers)});
}
TEST(GradMask, OlmoeNeededGradsBitwiseOthersUntouched) {
  check_arch({"olmoe", olmoe_config(kLayers)});
}
TEST(GradMask, Qwen2MoeNeededGradsBitwiseOthersUntouched) {
  check_arch({"qwen2moe", qwen2moe_config(kLayers)});
}

TEST(GradMask, LowestLayerAndAny) {
  ModelConfig c = qwen2moe_config(kLayers);  // tied embeddings: lm_head is the embedding
  c.lora_rank = 2;
  const ParamLayout L = ParamLayout::build(c);
  auto lowest = [&](const std::function<bool(const ParamSpec&)>& p) {
    return GradMask::select(L, p).lowest_layer(L);
  };
  EXPECT_EQ(GradMask::all(L).lowest_layer(L), -1);
  EXPECT_EQ(GradMask::none(L).lowest_layer(L), kLayers);
  EXPECT_FALSE(GradMask::none(L).any());
  EXPECT_TRUE(GradMask::all(L).any());
  EXPECT_EQ(GradMask::all(L).needs.size(), L.specs().size());
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.kind == ParamKind::Embedding; }), -1);
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.kind == ParamKind::Router; }), 1);  // layer 0 is dense
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.kind == ParamKind::Lora; }), 1);
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.kind == ParamKind::Norm; }), 0);
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.layer == kLayers - 1; }), kLayers - 1);
  EXPECT_EQ(lowest([](const ParamSpec& s) { return s.name == "model.norm.weight"; }), kLayers);
  const GradMask r = GradMask::select(L, [](const ParamSpec& s) { return s.kind == ParamKind::Router; });
  for (size_t i = 0; i < L.specs().size(); ++i) {
    EXPECT_EQ(r.needs[i], L.specs()[i].kind == ParamKind::Router ? 1 : 0);
    EXPECT_EQ(r.need(L.specs()[i], L), r.needs[i] != 0);
  }
}

// Gradient pointers of un-needed tensors bind to null; needed ones to their place in the buffer.
TEST(GradMask, BindNullsUnneededTensors) {
  ModelConfig c = mixtral_config(2);
  c.lora_rank = 2;
  const ParamLayout L = ParamLayout::build(c);
  std::vector<float> g(size_t(L.total()));
  const GradMask mask =
      GradMask::select(L, [](const ParamSpec& s) { return s.kind == ParamKind::Lora && s.layer == 1; });
  const ModelView<float> v = ModelView<float>::bind(c, L, g.data(), &mask);
  EXPECT_EQ(v.embed, nullptr);
  EXPECT_EQ(v.lm_head, nullptr);
  EXPECT_EQ(v.layers[1].router, nullptr);
  EXPECT_EQ(v.layers[1].experts[2].gate, nullptr);
  EXPECT_EQ(v.layers[0].experts[2].gate_A, nullptr);
  EXPECT_EQ(v.layers[1].experts[2].gate_A,
            g.data() + L.find(lora_A_name(expert_name(c, 1, 2, "gate")))->offset);
  EXPECT_NE(v.layers[1].experts[3].down_B, nullptr);
}

}  // namespace
}  // namespace wattmoe::test
