// LoRA adapters on the routed experts (model/lora.h): layout (names, shapes, only routed experts), a fresh
// adapter (B = 0) leaves the logits bitwise as the base model's for every architecture (golden fixtures and
// random configs), a trained adapter equals the base model with merged weights W + s·B·A, double-precision
// finite-difference checks of the adapter gradients and of gradients that flow through adapted layers
// (Mixtral, OLMoE, Qwen2-MoE; the branch alone: tests/ops/lora_test.cpp), deterministic init, bitwise save/load, the
// config.json fields and their bad values.
#include <cmath>
#include <cstring>
#include <limits>

#include "../moe/model_gradcheck.h"
#include "../test_util.h"
#include "model/checkpoint.h"
#include "model/lora.h"

namespace wattmoe::test {
namespace {

constexpr int kB = 2, kS = 5;

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0);
}

template <class F>
void expect_error(F&& f, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one saying \"" << phrase << "\"";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(phrase), std::string::npos) << "message lacks \"" << phrase << "\": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "message is not one line: " << m;
  }
}

ModelConfig with_lora(ModelConfig c, int rank, float scale) {
  c.lora_rank = rank, c.lora_scale = scale;
  c.validate("test");
  return c;
}

TEST(LoraLayout, OneAdapterPairPerRoutedExpertMatrix) {
  const ModelConfig c =
      with_lora(qwen2moe_config(3), 2, 0.5f);  // layer 0 dense, layers 1-2 sparse + shared expert
  const ParamLayout L = ParamLayout::build(c), base = ParamLayout::build(qwen2moe_config(3));
  EXPECT_EQ(L.total(), c.num_parameters());
  int lora = 0;
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Lora) {
      const ParamSpec* b = base.find(s.name);
      ASSERT_NE(b, nullptr) << s.name;
      EXPECT_EQ(b->shape, s.shape);
      continue;
    }
    ++lora;
    EXPECT_TRUE(c.is_moe_layer(s.layer)) << s.name;
    EXPECT_GE(s.expert, 0);
    EXPECT_EQ(s.name.find("shared_expert"), std::string::npos);
  }
  EXPECT_EQ(lora, 2 * c.num_experts * 3 * 2);
  EXPECT_EQ(int(L.specs().size()), int(base.specs().size()) + lora);
  // PEFT-style names and [r, in] / [out, r] shapes.
  const std::string w = expert_name(c, 1, 3, "down");
  EXPECT_EQ(w, "model.layers.1.mlp.experts.3.down_proj.weight");
  const ParamSpec* A = L.find("model.layers.1.mlp.experts.3.down_proj.lora_A.weight");
  const ParamSpec* B = L.find("model.layers.1.mlp.experts.3.down_proj.lora_B.weight");
  ASSERT_TRUE(A && B);
  EXPECT_EQ(A->shape, (Shape{2, c.moe_intermediate_size}));
  EXPECT_EQ(B->shape, (Shape{c.hidden_size, 2}));
  EXPECT_EQ(A->layer, 1);
  EXPECT_EQ(A->expert, 3);
  const ModelConfig m = with_lora(mixtral_config(), 3, 1.f);
  const ParamLayout Lm = ParamLayout::build(m);
  const ParamSpec* gA = Lm.find("model.layers.0.block_sparse_moe.experts.2.w1.lora_A.weight");
  ASSERT_NE(gA, nullptr);
  EXPECT_EQ(gA->shape, (Shape{3, m.hidden_size}));
  EXPECT_EQ(Lm.total(), m.num_parameters());
  EXPECT_LT(m.active_parameters(), m.num_parameters());
  // Bound views: adapters on routed experts only.
  std::vector<float> p(size_t(L.total()));
  const ModelView<float> v = ModelView<float>::bind(c, L, p.data());
  EXPECT_TRUE(v.layers[1].experts[0].has_lora());
  EXPECT_FALSE(v.layers[1].shared.has_lora());
  EXPECT_FALSE(v.layers[0].dense.has_lora());
  EXPECT_EQ(v.layers[1].experts[3].down_A, p.data() + A->offset);
  EXPECT_EQ(v.layers[1].experts[3].down_B, p.data() + B->offset);
}

// A fresh adapter (B = 0) changes nothing: logits and router logits bitwise equal the base model's.
void expect_fresh_is_base(const ModelConfig& base_cfg, const std::vector<float>& base_p,
                          const std::string& what) {
  SCOPED_TRACE(what);
  const int rank = std::min(3, std::min(base_cfg.hidden_size, base_cfg.moe_intermediate_size));
  ModelConfig lc;
  const std::vector<float> lp = expand_with_lora(base_cfg, base_p.data(), rank, 2.f, 7, &lc);
  EXPECT_EQ(lc.lora_rank, rank);
  EXPECT_EQ(lc.lora_scale, 2.f);
  const ParamLayout bl = ParamLayout::build(base_cfg), ll = ParamLayout::build(lc);
  ASSERT_EQ(int64_t(lp.size()), ll.total());
  bool any_A = false;
  for (const ParamSpec& s : ll.specs()) {
    if (s.kind == ParamKind::Lora) {
      for (int64_t i = 0; i < s.numel; ++i) any_A |= lp[size_t(s.offset + i)] != 0.f;
      continue;
    }
    const ParamSpec* b = bl.find(s.name);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(std::memcmp(&lp[size_t(s.offset)], &base_p[size_t(b->offset)], sizeof(float) * size_t(s.numel)),
              0)
        << s.name << " not copied";
  }
  EXPECT_TRUE(any_A) << "A factors are all zero";
  const std::vector<int32_t> ids = random_ids(2 * 7, base_cfg.vocab_size, 11);
  Transformer<float> mb(base_cfg), ml(lc);
  Activations<float> ab, al;
  mb.forward(base_p.data(), ids.data(), 2, 7, ab);
  ml.forward(lp.data(), ids.data(), 2, 7, al);
  EXPECT_TRUE(bitwise_equal(ab.logits, al.logits));
  for (size_t l = 0; l < ab.layers.size(); ++l)
    EXPECT_TRUE(bitwise_equal(ab.layers[l].router_logits, al.layers[l].router_logits));

  // Sanity: a non-zero B does change the logits (so the comparison above can fail).
  std::vector<float> trained = lp;
  for (const ParamSpec& s : ll.specs())
    if (s.kind == ParamKind::Lora)
      for (int64_t i = 0; i < s.numel; ++i) trained[size_t(s.offset + i)] = 0.3f;
  ml.forward(trained.data(), ids.data(), 2, 7, al);
  EXPECT_GT(max_abs_diff(ab.logits, al.logits), 1e-4);
}

TEST(LoraForward, FreshAdapterIsBitwiseBaseOnFixtures) {
  for (const char* name : {"mixtral_gqa", "olmoe_basic", "qwen2moe_shared", "qwen2moe_sparse_step"}) {
    const ModelWeights<float> m = load_model<float>(source_path(std::string("tests/fixtures/") + name));
    expect_fresh_is_base(m.config, m.params, name);
  }
}

TEST(LoraForward, FreshAdapterIsBitwiseBaseOnRandomConfigs) {
  for (const NamedConfig& nc : all_arch_configs(2)) {
    const ParamLayout L = ParamLayout::build(nc.config);
    expect_fresh_is_base(nc.config, random_params<float>(L, 5), nc.name);
  }
}

// y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ is the base model with W replaced by W + s·B·A (double; agreement to rounding).
TEST(LoraForward, EqualsMergedWeights) {
  for (const NamedConfig& nc : all_arch_configs(2)) {
    SCOPED_TRACE(nc.name);
    const ModelConfig lc = with_lora(nc.config, 2, 0.75f);
    const ParamLayout ll = ParamLayout::build(lc), bl = ParamLayout::build(nc.config);
    const std::vector<double> lp = random_params<double>(ll, 21);
    std::vector<double> merged(size_t(bl.total()));
    for (const ParamSpec& s : bl.specs())
      std::copy_n(&lp[size_t(ll.find(s.name)->offset)], s.numel, &merged[size_t(s.offset)]);
    for (const ParamSpec& s : bl.specs()) {
      if (s.kind != ParamKind::Expert) continue;
      const ParamSpec &A = *ll.find(lora_A_name(s.name)), &B = *ll.find(lora_B_name(s.name));
      const int64_t out = s.shape[0], in = s.shape[1], r = lc.lora_rank;
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) {
          double d = 0;
          for (int64_t j = 0; j < r; ++j)
            d += lp[size_t(B.offset + o * r + j)] * lp[size_t(A.offset + j * in + i)];
          merged[size_t(s.offset + o * in + i)] += double(lc.lora_scale) * d;
        }
    }
    const std::vector<int32_t> ids = random_ids(kB * kS, lc.vocab_size, 3);
    Transformer<double> ml(lc), mb(nc.config);
    Activations<double> al, ab;
    ml.forward(lp.data(), ids.data(), kB, kS, al);
    mb.forward(merged.data(), ids.data(), kB, kS, ab);
    for (size_t l = 0; l < al.layers.size(); ++l)
      EXPECT_EQ(al.layers[l].routing.expert, ab.layers[l].routing.expert);
    // Both are sums of O(10) terms of O(1) in double: 1e-12 leaves a wide margin over rounding (~1e-15) and
    // is far below any real difference (a wrong factor or transpose changes logits by O(1e-2)).
    EXPECT_LT(max_abs_diff(al.logits, ab.logits), 1e-12);
  }
}

// Whole-model check with non-zero adapters (random_params draws B ~ N(0, 0.2²)): the LoRA tensors themselves,
// and every tensor below an adapted layer (embedding, layer-0 attention, ...) whose gradient flows back
// through the adapters' dx.
void check_lora_arch(const NamedConfig& nc) {
  SCOPED_TRACE(nc.name);
  const ModelConfig c = with_lora(nc.config, 2, 1.5f);
  const ParamLayout layout = ParamLayout::build(c);
  const std::vector<double> p = random_params<double>(layout, 300 + uint64_t(c.arch));
  const std::vector<int32_t> ids = random_ids(kB * kS, c.vocab_size, 400 + uint64_t(c.arch));
  Transformer<double> m(c);
  LossSpec spec{true, Objective::Nll, 0.05, 0.01, nullptr};
  GradCheckOptions opt;
  opt.per_kind = 40;
  const GradCheckResult r = grad_check(m, p, ids, kB, kS, spec, opt);
  EXPECT_EQ(r.err_by_kind.count(kind_name(ParamKind::Lora)), 1u) << "no LoRA coordinate was checked";
  EXPECT_EQ(r.err_by_kind.count("embedding"), 1u);
  EXPECT_EQ(r.err_by_kind.count("attention"), 1u);
}

TEST(LoraGradcheck, Mixtral) {
  check_lora_arch({"mixtral_gqa", mixtral_config()});
}
TEST(LoraGradcheck, Olmoe) {
  ModelConfig c = olmoe_config();
  c.clip_qkv = 0;  // clamp kinks are covered by ModelGradcheck; here they would only add skipped coordinates
  check_lora_arch({"olmoe", c});
}
TEST(LoraGradcheck, Qwen2Moe) {
  check_lora_arch({"qwen2moe_shared_dense", qwen2moe_config()});
}

TEST(LoraInit, DeterministicBoundedAndBZero) {
  const ModelConfig base = mixtral_config();
  const std::vector<float> bp = random_params<float>(ParamLayout::build(base), 1);
  ModelConfig c;
  const std::vector<float> a = expand_with_lora(base, bp.data(), 4, 1.f, 42, &c);
  const std::vector<float> b = expand_with_lora(base, bp.data(), 4, 1.f, 42, nullptr);
  const std::vector<float> d = expand_with_lora(base, bp.data(), 4, 1.f, 43, nullptr);
  EXPECT_TRUE(bitwise_equal(a, b));
  EXPECT_FALSE(bitwise_equal(a, d));
  const ParamLayout L = ParamLayout::build(c);
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Lora) continue;
    const bool is_A = s.name.find(".lora_A.") != std::string::npos;
    const double bound = 1.0 / std::sqrt(double(s.shape[1]));
    double maxabs = 0;
    for (int64_t i = 0; i < s.numel; ++i)
      maxabs = std::max(maxabs, double(std::abs(a[size_t(s.offset + i)])));
    if (is_A) {
      EXPECT_LE(maxabs, bound) << s.name;
      EXPECT_GT(maxabs, 0.5 * bound) << s.name << " (draws should fill the range)";
    } else {
      EXPECT_EQ(maxabs, 0.0) << s.name;
    }
  }
  // init_lora touches only the adapters.
  std::vector<float> q(a.size(), 9.f);
  init_lora(c, L, q.data(), 42);
  for (const ParamSpec& s : L.specs())
    for (int64_t i = 0; i < s.numel; ++i) {
      const size_t j = size_t(s.offset + i);
      if (s.kind == ParamKind::Lora) {
        ASSERT_EQ(q[j], a[j]) << s.name;
      } else {
        ASSERT_EQ(q[j], 9.f) << s.name;
      }
    }
}

TEST(LoraCheckpoint, SaveLoadRoundTripIsBitwise) {
  const ModelConfig c = with_lora(olmoe_config(), 3, 0.625f);
  const ParamLayout L = ParamLayout::build(c);
  const std::vector<float> p = random_params<float>(L, 8);
  TempDir dir;
  save_model<float>(dir.path(), c, L, p.data());
  const ModelWeights<float> m = load_model<float>(dir.path());
  EXPECT_EQ(m.config.lora_rank, 3);
  EXPECT_EQ(m.config.lora_scale, 0.625f);
  EXPECT_EQ(m.layout.total(), L.total());
  EXPECT_TRUE(bitwise_equal(m.params, p));
  // A checkpoint of the base model does not load under a LoRA config: the adapters are missing.
  TempDir base;
  const ModelConfig bc = olmoe_config();
  const std::vector<float> bp = random_params<float>(ParamLayout::build(bc), 8);
  save_model<float>(base.path(), bc, ParamLayout::build(bc), bp.data());
  Json j = read_json_file(base.file("config.json"));
  j["wattmoe_lora_rank"] = 2;
  write_json_file(base.file("config.json"), j);
  expect_error([&] { load_model<float>(base.path()); },
               "missing tensor model.layers.0.mlp.experts.0.gate_proj.lora_A");
}

TEST(LoraConfig, JsonRoundTrip) {
  for (const NamedConfig& nc : all_arch_configs(2)) {
    SCOPED_TRACE(nc.name);
    const Json plain = model_config_to_json(nc.config);
    EXPECT_FALSE(plain.contains("wattmoe_lora_rank"));
    EXPECT_FALSE(plain.contains("wattmoe_lora_scale"));
    EXPECT_EQ(parse_model_config(plain, "plain").lora_rank, 0);
    const ModelConfig c =
        with_lora(nc.config, 3, 0.1f);  // 0.1f is not a double: must come back as the same float
    const Json j = model_config_to_json(c);
    EXPECT_EQ(j.at("wattmoe_lora_rank").get<int>(), 3);
    const ModelConfig back = parse_model_config(Json::parse(j.dump()), "round trip");
    EXPECT_EQ(back.lora_rank, 3);
    EXPECT_EQ(back.lora_scale, 0.1f);
    EXPECT_EQ(ParamLayout::build(back).total(), ParamLayout::build(c).total());
  }
}

TEST(LoraConfig, BadValues) {
  const Json j = model_config_to_json(mixtral_config());  // hidden 16, expert width 8
  auto parse_with = [&](const char* key, Json v) {
    Json k = j;
    k[key] = std::move(v);
    parse_model_config(k, "cfg.json");
  };
  expect_error([&] { parse_with("wattmoe_lora_rank", -1); }, "cfg.json: wattmoe_lora_rank must be in [0, 8]");
  expect_error([&] { parse_with("wattmoe_lora_rank", 9); }, "wattmoe_lora_rank must be in [0, 8]");
  expect_error([&] { parse_with("wattmoe_lora_rank", "four"); }, "field \"wattmoe_lora_rank\" must be an integer, got a string");
  expect_error([&] { parse_with("wattmoe_lora_scale", 1e300); },
               "wattmoe_lora_scale must be a finite number");
  ModelConfig c = mixtral_config();
  c.lora_rank = 2, c.lora_scale = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { c.validate("flags"); }, "flags: wattmoe_lora_scale must be a finite number");

  const ModelConfig base = mixtral_config();
  const std::vector<float> bp = random_params<float>(ParamLayout::build(base), 1);
  expect_error([&] { expand_with_lora(base, bp.data(), -2, 1.f, 0, nullptr); },
               "expand_with_lora(rank -2, scale 1): wattmoe_lora_rank must be in [0, 8]");
  expect_error([&] { expand_with_lora(base, bp.data(), 2, INFINITY, 0, nullptr); },
               "wattmoe_lora_scale must be a finite");
  ModelConfig lc;
  const std::vector<float> lp = expand_with_lora(base, bp.data(), 2, 1.f, 0, &lc);
  expect_error([&] { expand_with_lora(lc, lp.data(), 2, 1.f, 0, nullptr); },
               "already has LoRA adapters (rank 2)");
}

}  // namespace
}  // namespace wattmoe::test
