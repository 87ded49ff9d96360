#include "model/expert_quant.h"

#include "core/error.h"

namespace wattmoe {

int64_t ExpertCodes::layer_codes() const { return 3 * E * I * H; }
int64_t ExpertCodes::layer_scales() const { return E * (2 * I + H); }

void quantise_experts(const ModelConfig& c, const ParamLayout& L, float* params, ops::ExpertPrecision p,
                      ExpertCodes* out) {
  if (out) *out = ExpertCodes{};
  if (p == ops::ExpertPrecision::Bf16) return;
  std::vector<int> moe_index(size_t(c.num_layers), -1);
  int moe_layers = 0;
  for (int l = 0; l < c.num_layers; ++l)
    if (c.is_moe_layer(l)) moe_index[size_t(l)] = moe_layers++;
  const int64_t E = c.num_experts, I = c.moe_intermediate_size, H = c.hidden_size;
  if (out) {
    out->precision = p, out->E = E, out->I = I, out->H = H;
    out->codes.assign(size_t(moe_layers * out->layer_codes()), 0);
    out->scales.assign(size_t(moe_layers * out->layer_scales()), 0.f);
  }
  std::vector<int> seen;  // expert tensors met so far per expert of the current layer (gate, up, down order)
  int cur_layer = -1;
  for (const ParamSpec& s : L.specs()) {
    if (s.kind != ParamKind::Expert) continue;
    if (s.layer != cur_layer) seen.assign(size_t(E), 0), cur_layer = s.layer;
    const int which = seen[size_t(s.expert)]++;  // 0 gate [I,H], 1 up [I,H], 2 down [H,I]
    WATTMOE_CHECK(which < 3 && s.shape.size() == 2, "unexpected expert tensor {}", s.name);
    const int64_t rows = s.shape[0], cols = s.shape[1];
    uint8_t* codes = nullptr;
    float* scales = nullptr;
    if (out) {
      const int64_t ml = moe_index[size_t(s.layer)];
      WATTMOE_CHECK(ml >= 0 && rows * cols == I * H, "expert tensor {} outside an MoE layer", s.name);
      codes = out->codes.data() + ml * out->layer_codes() + (which * E + s.expert) * I * H;
      scales = out->scales.data() + ml * out->layer_scales() + (which < 2 ? (which * E + s.expert) * I
                                                                           : 2 * E * I + s.expert * H);
    }
    ops::fake_quantise_rows(params + s.offset, rows, cols, p, codes, scales, s.name);
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
