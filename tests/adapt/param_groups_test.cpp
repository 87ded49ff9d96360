// Parameter groups: parsing, the tensors each group selects, the GradMask and per-element masks agree, top=N.
#include <gtest/gtest.h>

#include "adapt/param_groups.h"
#include "adapt_test_util.h"
#include "core/error.h"

namespace wattmoe::test {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AdaptParamGroups, Parse) {
  const ParamGroups g = parse_param_groups("router,norms,lora");
  EXPECT_TRUE(g.router && g.norms && g.lora && !g.all);
  EXPECT_EQ(g.top_layers, 0);
  EXPECT_EQ(param_groups_str(g), "router,norms,lora");
  const ParamGroups t = parse_param_groups("all,top=2");
  EXPECT_TRUE(t.all);
  EXPECT_EQ(t.top_layers, 2);
  EXPECT_EQ(param_groups_str(parse_param_groups(param_groups_str(t))).size(), param_groups_str(t).size());
  EXPECT_NE(error_of([] { parse_param_groups("router,attention"); }).find("unknown group \"attention\""),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_param_groups(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { parse_param_groups("router,,norms"); }).find("unknown group \"\""), std::string::npos);
  EXPECT_NE(error_of([] { parse_param_groups("norms,top=0"); }).find("top=N"), std::string::npos);
  EXPECT_NE(error_of([] { parse_param_groups("norms,top=x"); }).find("top=N"), std::string::npos);
  EXPECT_NE(error_of([] { parse_param_groups("top=2"); }).find("at least one"), std::string::npos);
}

TEST(AdaptParamGroups, SelectsTheRightTensors) {
  ModelConfig c = olmoe_config(3);  // q/k norms
  c.lora_rank = 2;
  const ParamLayout layout = ParamLayout::build(c);
  const ParamGroups g = parse_param_groups("router,norms,lora");
  validate_param_groups(g, c);
  int routers = 0, norms = 0, loras = 0;
  for (const ParamSpec& s : layout.specs()) {
    const bool in = in_param_groups(g, c, s);
    EXPECT_EQ(in, s.kind == ParamKind::Router || s.kind == ParamKind::Norm || s.kind == ParamKind::Lora) << s.name;
    routers += in && s.kind == ParamKind::Router, norms += in && s.kind == ParamKind::Norm,
        loras += in && s.kind == ParamKind::Lora;
  }
  EXPECT_EQ(routers, 3);
  EXPECT_EQ(norms, 3 * 4 + 1);  // input, post-attention, q, k per layer + final
  EXPECT_EQ(loras, 3 * 5 * 3 * 2);
  EXPECT_NE(error_of([&] { validate_param_groups(parse_param_groups("lora"), olmoe_config(2)); }).find("lora_rank"),
            std::string::npos);
  EXPECT_NE(error_of([&] { validate_param_groups(parse_param_groups("norms,top=4"), c); }).find("top=4"),
            std::string::npos);
}

TEST(AdaptParamGroups, MasksAgreeAndTopLayers) {
  const ModelConfig c = mixtral_config(3);
  const ParamLayout layout = ParamLayout::build(c);
  for (const std::string spec : {"router", "norms", "router,norms", "all", "norms,top=1", "all,top=2"}) {
    const ParamGroups g = parse_param_groups(spec);
    const GradMask gm = make_grad_mask(g, c, layout);
    const std::vector<uint8_t> em = make_trainable_mask(g, c, layout);
    const std::vector<ParamRange> ranges = trainable_ranges(g, c, layout);
    std::vector<uint8_t> from_ranges(em.size(), 0);
    for (const ParamRange& r : ranges) std::fill(from_ranges.begin() + r.offset, from_ranges.begin() + r.offset + r.numel, 1);
    EXPECT_EQ(em, from_ranges) << spec;
    int64_t n = 0;
    for (size_t i = 0; i < layout.specs().size(); ++i) {
      const ParamSpec& s = layout.specs()[i];
      EXPECT_EQ(gm.needs[i], em[size_t(s.offset)]) << spec << " " << s.name;
      n += gm.needs[i] ? s.numel : 0;
    }
    EXPECT_EQ(count_elements(ranges), n) << spec;
  }
  // top=1 with norms: the last layer's norms and the final norm; the lowest layer backward must reach is 2.
  const ParamGroups top = parse_param_groups("norms,top=1");
  for (const ParamSpec& s : layout.specs())
    EXPECT_EQ(in_param_groups(top, c, s), s.kind == ParamKind::Norm && (s.layer == 2 || s.layer == -1)) << s.name;
  EXPECT_EQ(make_grad_mask(top, c, layout).lowest_layer(layout), 2);
  // all,top=2: layers 1-2, final norm, lm_head; never the embedding.
  const ParamGroups all2 = parse_param_groups("all,top=2");
  for (const ParamSpec& s : layout.specs()) {
    const bool want = s.layer >= 1 || s.kind == ParamKind::LmHead || (s.layer == -1 && s.kind == ParamKind::Norm);
    EXPECT_EQ(in_param_groups(all2, c, s), want) << s.name;
  }
}

}  // namespace
}  // namespace wattmoe::test
