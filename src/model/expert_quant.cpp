#include "model/expert_quant.h"

#include "core/error.h"

namespace wattmoe {

int64_t ExpertCodes::layer_codes() const { return 3 * E * I * H; }
int64_t ExpertCodes::layer_scales() const { return E * (2 * I + H); }

std::vector<ExpertQuantSlot> expert_quant_slots(const ModelConfig& c, const ParamLayout& L) {
  std::vector<int> moe_index(size_t(c.num_layers), -1);
  int moe_layers = 0;
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) moe_index[size_t(l)] = moe_layers++;
  ExpertCodes shape;  // for its per-layer sizes
  const int64_t E = shape.E = c.num_experts, I = shape.I = c.moe_intermediate_size, H = shape.H = c.hidden_size;
  std::vector<ExpertQuantSlot> slots;
  std::vector<int> seen;  // expert tensors met so far per expert of the current layer (gate, up, down order)
  int cur_layer = -1;
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Expert) continue;
    if (s.layer != cur_layer) seen.assign(size_t(E), 0), cur_layer = s.layer;
    const int which = seen[size_t(s.expert)]++;  // 0 gate [I,H], 1 up [I,H], 2 down [H,I]
    const int64_t ml = moe_index[size_t(s.layer)];
    WATTMOE_CHECK(which < 3 && s.shape.size() == 2, "unexpected expert tensor {}", s.name);
    WATTMOE_CHECK(ml >= 0 && s.shape[0] * s.shape[1] == I * H, "expert tensor {} outside an MoE layer", s.name);
    slots.push_back({&s, ml * shape.layer_codes() + (which * E + s.expert) * I * H,
                     ml * shape.layer_scales() + (which < 2 ? (which * E + s.expert) * I : 2 * E * I + s.expert * H)});
  }
  return slots;
}

std::vector<ParamRange> expert_param_ranges(const ParamLayout& L) {
  std::vector<ParamRange> ranges;
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Expert) continue;
    if (!ranges.empty() && ranges.back().offset + ranges.back().numel == s.offset) ranges.back().numel += s.numel;
    else ranges.push_back({s.offset, s.numel});
  }
  return ranges;
}

void quantise_experts(const ModelConfig& c, const ParamLayout& L, float* params, ops::ExpertPrecision p,
                      ExpertCodes* out) {
  if (out) *out = ExpertCodes{};
  if (p == ops::ExpertPrecision::Bf16) return;
  const std::vector<ExpertQuantSlot> slots = expert_quant_slots(c, L);
  if (out) {
    int moe_layers = 0;
    for (int l = 0; l < c.num_layers; ++l) moe_layers += c.is_moe_layer(l);
    out->precision = p, out->E = c.num_experts, out->I = c.moe_intermediate_size, out->H = c.hidden_size;
    out->codes.assign(size_t(moe_layers * out->layer_codes()), 0);
    out->scales.assign(size_t(moe_layers * out->layer_scales()), 0.f);
  }
  for (const ExpertQuantSlot& q : slots) {
    const ParamSpec& s = *q.spec;
    uint8_t* codes = out ? out->codes.data() + q.code_offset : nullptr;
    float* scales = out ? out->scales.data() + q.scale_offset : nullptr;
    ops::fake_quantise_rows(params + s.offset, s.shape[0], s.shape[1], p, codes, scales, s.name);
  }
}

bool ranges_touch_experts(const ParamLayout& L, const std::vector<ParamRange>& ranges) {
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Expert) continue;
    for (const ParamRange& r : ranges)
      if (r.offset < s.offset + s.numel && s.offset < r.offset + r.numel) return true;
  }
  return false;
}

}  // namespace wattmoe
