// The adaptation optimizers touch only trainable elements; SGD momentum and clipping follow their formulas; reset
// gives a fresh state.
#include <gtest/gtest.h>

#include <cmath>

#include "adapt/adapt_optimizer.h"
#include "adapt_test_util.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

TEST(AdaptOptimizer, SgdMomentumFormula) {
  SgdMomentum sgd({{1, 2}}, 4, 0.5);
  std::vector<float> p = {1, 1, 1, 1};
  const std::vector<float> g = {10, 1, 2, 10};
  sgd.step(p.data(), g.data(), 0.1);  // v = g
  EXPECT_FLOAT_EQ(p[1], 1 - 0.1f * 1);
  EXPECT_FLOAT_EQ(p[2], 1 - 0.1f * 2);
  sgd.step(p.data(), g.data(), 0.1);  // v = 0.5·g + g
  EXPECT_FLOAT_EQ(p[1], 0.9f - 0.1f * 1.5f);
  EXPECT_EQ(p[0], 1.f);
  EXPECT_EQ(p[3], 1.f);
  sgd.reset();
  EXPECT_EQ(sgd.steps(), 0);
  const float before = p[1];
  sgd.step(p.data(), g.data(), 0.1);
  EXPECT_FLOAT_EQ(p[1], before - 0.1f) << "velocity was zeroed";
  EXPECT_THROW(SgdMomentum({}, 4, 1.0), Error);
}

TEST(AdaptOptimizer, ClipOverTrainableElementsOnly) {
  std::vector<float> g = {100, 3, 4, 100};
  const double n = clip_grad_ranges(g.data(), {{1, 2}}, 1.0);
  EXPECT_DOUBLE_EQ(n, 5.0);
  EXPECT_FLOAT_EQ(g[1], 0.6f);
  EXPECT_FLOAT_EQ(g[2], 0.8f);
  EXPECT_EQ(g[0], 100.f);
  std::vector<float> h = {3, 4};
  EXPECT_DOUBLE_EQ(clip_grad_ranges(h.data(), {{0, 2}}, 0.0), 5.0);
  EXPECT_EQ(h[0], 3.f) << "clip 0 is off";
}

TEST(AdaptOptimizer, BothKindsTouchOnlyTrainable) {
  const ModelConfig c = mixtral_config(2);
  const ParamLayout layout = ParamLayout::build(c);
  const ParamGroups groups = parse_param_groups("router,norms");
  std::vector<float> grads(size_t(layout.total()));
  Rng rng(3);
  for (float& x : grads) x = float(rng.normal());
  for (AdaptOptimizerKind kind : {AdaptOptimizerKind::Sgd, AdaptOptimizerKind::AdamW}) {
    AdaptOptimConfig oc;
    oc.kind = kind, oc.lr = 0.1, oc.weight_decay = 0.1;
    AdaptOptimizer opt(layout, make_trainable_mask(groups, c, layout), trainable_ranges(groups, c, layout), oc);
    std::vector<float> p(size_t(layout.total()), 1.f), g = grads;
    opt.step(p.data(), g.data());
    opt.step(p.data(), g.data());
    EXPECT_EQ(opt.steps(), 2);
    for (const ParamSpec& s : layout.specs())
      for (int64_t i = s.offset; i < s.offset + s.numel; ++i) {
        if (in_param_groups(groups, c, s)) {
          ASSERT_NE(p[size_t(i)], 1.f) << s.name;
        } else {
          ASSERT_EQ(p[size_t(i)], 1.f) << s.name;
        }
      }
    opt.reset();
    EXPECT_EQ(opt.steps(), 0);
  }
}

TEST(AdaptOptimizer, BadConfigIsError) {
  auto msg = [](AdaptOptimConfig c) {
    try {
      validate_adapt_optim(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({.lr = -1}).find("lr"), std::string::npos);
  EXPECT_NE(msg({.lr = NAN}).find("lr"), std::string::npos);
  EXPECT_NE(msg({.momentum = -0.1}).find("momentum"), std::string::npos);
  EXPECT_NE(msg({.beta1 = 1}).find("beta1"), std::string::npos);
  EXPECT_NE(msg({.beta2 = 1.5}).find("beta2"), std::string::npos);
  EXPECT_NE(msg({.eps = 0}).find("eps"), std::string::npos);
  EXPECT_NE(msg({.weight_decay = -1}).find("weight_decay"), std::string::npos);
  EXPECT_NE(msg({.clip = -1}).find("clip"), std::string::npos);
  EXPECT_EQ(msg({}), "");
  EXPECT_EQ(parse_adapt_optimizer("adamw"), AdaptOptimizerKind::AdamW);
  EXPECT_THROW(parse_adapt_optimizer("rmsprop"), Error);
}

}  // namespace
}  // namespace wattmoe::test
