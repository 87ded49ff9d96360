#include "model/grad_mask.h"

#include <algorithm>

#include "core/error.h"

namespace wattmoe {

GradMask GradMask::all(const ParamLayout& layout) {
  return {std::vector<uint8_t>(layout.specs().size(), 1)};
}

GradMask GradMask::none(const ParamLayout& layout) {
  return {std::vector<uint8_t>(layout.specs().size(), 0)};
}

GradMask GradMask::select(const ParamLayout& layout, const std::function<bool(const ParamSpec&)>& pred) {
  GradMask m = none(layout);
  for (size_t i = 0; i < layout.specs().size(); ++i) m.needs[i] = pred(layout.specs()[i]) ? 1 : 0;
  return m;
}

bool GradMask::any() const {
  return std::any_of(needs.begin(), needs.end(), [](uint8_t n) { return n != 0; });
}

bool GradMask::need(const ParamSpec& s, const ParamLayout& layout) const {
  const auto& specs = layout.specs();
  WATTMOE_CHECK(needs.size() == specs.size(), "gradient mask has {} entries for {} tensors", needs.size(),
                specs.size());
  WATTMOE_CHECK(&s >= specs.data() && &s < specs.data() + specs.size(), "{} is not a spec of this layout",
                s.name);
  return needs[size_t(&s - specs.data())] != 0;
}

int GradMask::lowest_layer(const ParamLayout& layout) const {
  const auto& specs = layout.specs();
  WATTMOE_CHECK(needs.size() == specs.size(), "gradient mask has {} entries for {} tensors", needs.size(),
                specs.size());
  int layers = 0;
  for (const ParamSpec& s : specs) layers = std::max(layers, s.layer + 1);
  int lowest = layers;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!needs[i]) continue;
    if (specs[i].kind == ParamKind::Embedding) return -1;
    if (specs[i].layer >= 0) lowest = std::min(lowest, specs[i].layer);
  }
  return lowest;
}

}  // namespace wattmoe
