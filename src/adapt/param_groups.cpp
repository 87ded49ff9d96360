#include "adapt/param_groups.h"

#include <charconv>

#include "core/error.h"

namespace wattmoe {

ParamGroups parse_param_groups(const std::string& spec) {
  ParamGroups g;
  WATTMOE_REQUIRE(!spec.empty(), "parameter groups: empty spec (expected a comma-separated list of router, norms, "
                                 "lora, all, top=N)");
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string tok = spec.substr(pos, comma - pos);
    if (tok == "router") {
      g.router = true;
    } else if (tok == "norms") {
      g.norms = true;
    } else if (tok == "lora") {
      g.lora = true;
    } else if (tok == "all") {
      g.all = true;
    } else if (tok.rfind("top=", 0) == 0) {
      const char* b = tok.data() + 4;
      const char* e = tok.data() + tok.size();
      int n = 0;
      const auto r = std::from_chars(b, e, n);
      WATTMOE_REQUIRE(b != e && r.ec == std::errc() && r.ptr == e && n >= 1,
                      "parameter groups \"{}\": \"{}\" needs a positive number of layers (top=N)", spec, tok);
      g.top_layers = n;
    } else {
      fail("parameter groups \"{}\": unknown group \"{}\" (expected router, norms, lora, all or top=N)", spec, tok);
    }
    pos = comma + 1;
  }
  WATTMOE_REQUIRE(g.router || g.norms || g.lora || g.all,
                  "parameter groups \"{}\": choose at least one of router, norms, lora, all", spec);
  return g;
}

std::string param_groups_str(const ParamGroups& g) {
  std::string s;
  auto add = [&](const std::string& t) {
    if (!s.empty()) s += ',';
    s += t;
  };
  if (g.all) add("all");
  if (g.router) add("router");
  if (g.norms) add("norms");
  if (g.lora) add("lora");
  if (g.top_layers > 0) add("top=" + std::to_string(g.top_layers));
  return s;
}

void validate_param_groups(const ParamGroups& g, const ModelConfig& c) {
  WATTMOE_REQUIRE(g.router || g.norms || g.lora || g.all,
                  "parameter groups: choose at least one of router, norms, lora, all");
  WATTMOE_REQUIRE(!g.lora || c.lora_rank > 0, "parameter group lora needs LoRA adapters (lora_rank > 0, got {})",
                  c.lora_rank);
  WATTMOE_REQUIRE(g.top_layers >= 0 && g.top_layers <= c.num_layers,
                  "parameter groups: top={} is outside [1, {}] (the model's layers)", g.top_layers, c.num_layers);
}

bool in_param_groups(const ParamGroups& g, const ModelConfig& c, const ParamSpec& s) {
  if (g.top_layers > 0) {
    if (s.layer < 0) {
      if (s.kind == ParamKind::Norm) return g.norms || g.all;  // the final norm
      if (s.kind == ParamKind::LmHead) return g.all;
      return false;  // the embedding sits below every layer
    }
    if (s.layer < c.num_layers - g.top_layers) return false;
  }
  if (g.all) return true;
  return (g.router && s.kind == ParamKind::Router) || (g.norms && s.kind == ParamKind::Norm) ||
         (g.lora && s.kind == ParamKind::Lora);
}

GradMask make_grad_mask(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout) {
  return GradMask::select(layout, [&](const ParamSpec& s) { return in_param_groups(g, c, s); });
}

std::vector<uint8_t> make_trainable_mask(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout) {
  std::vector<uint8_t> m(size_t(layout.total()), 0);
  for (const ParamSpec& s : layout.specs())
    if (in_param_groups(g, c, s)) std::fill(m.begin() + s.offset, m.begin() + s.offset + s.numel, uint8_t(1));
  return m;
}

std::vector<ParamRange> trainable_ranges(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout) {
  std::vector<ParamRange> r;
  for (const ParamSpec& s : layout.specs()) {
    if (!in_param_groups(g, c, s)) continue;
    if (!r.empty() && r.back().offset + r.back().numel == s.offset)
      r.back().numel += s.numel;
    else
      r.push_back({s.offset, s.numel});
  }
  return r;
}

int64_t count_elements(const std::vector<ParamRange>& ranges) {
  int64_t n = 0;
  for (const ParamRange& r : ranges) n += r.numel;
  return n;
}

}  // namespace wattmoe
