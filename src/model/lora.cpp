#include "model/lora.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"

namespace wattmoe {

void init_lora(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed) {
  WATTMOE_CHECK(layout.total() == c.num_parameters(), "layout of {} values does not match the config's {}",
                layout.total(), c.num_parameters());
  Rng rng(seed);  // one stream over the adapters in layout order
  for (const ParamSpec& s : layout.specs()) {
    if (s.kind != ParamKind::Lora) continue;
    float* p = params + s.offset;
    const std::string suffix = ".lora_A.weight";
    const bool is_A = s.name.size() > suffix.size() &&
                      s.name.compare(s.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (is_A) {  // A [r, in]
      const double bound = 1.0 / std::sqrt(double(s.shape[1]));
      for (int64_t i = 0; i < s.numel; ++i) p[i] = float((2.0 * rng.uniform() - 1.0) * bound);
    } else {  // B [out, r]
      std::memset(p, 0, sizeof(float) * size_t(s.numel));
    }
  }
}

std::vector<float> expand_with_lora(const ModelConfig& base, const float* base_params, int rank, float scale,
                                    uint64_t seed, ModelConfig* out_cfg) {
  WATTMOE_REQUIRE(base.lora_rank == 0, "expand_with_lora: the base model already has LoRA adapters (rank {})",
                  base.lora_rank);
  ModelConfig c = base;
  c.lora_rank = rank, c.lora_scale = scale;
  c.validate(fmt::format("expand_with_lora(rank {}, scale {})", rank, scale));
  const ParamLayout from = ParamLayout::build(base), to = ParamLayout::build(c);
  std::vector<float> p(size_t(to.total()), 0.f);
  for (const ParamSpec& s : from.specs()) {
    const ParamSpec* d = to.find(s.name);
    WATTMOE_CHECK(d && d->numel == s.numel, "{} missing from the adapted layout", s.name);
    std::memcpy(p.data() + d->offset, base_params + s.offset, sizeof(float) * size_t(s.numel));
  }
  init_lora(c, to, p.data(), seed);
  if (out_cfg) *out_cfg = c;
  return p;
}

}  // namespace wattmoe
