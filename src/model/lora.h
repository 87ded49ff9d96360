// LoRA adapters on every routed expert (gate, up and down of each expert of each MoE layer).
// For a matrix W [out, in] the adapter is A [r, in] and B [out, r]; the projection becomes
//   y = x·Wᵀ + lora_scale · (x·Aᵀ)·Bᵀ        (lora_scale = alpha / r, ModelConfig::lora_scale)
// The tensors live in the same flat parameter buffer as the weights (ParamKind::Lora, see ParamLayout::build), so
// load/save, zeroing and the optimizer see them like any other tensor. A fresh adapter has B = 0: it changes nothing
// until trained, and the forward of a fresh LoRA model is bitwise the base model's.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace wattmoe {

// Initialises every ParamKind::Lora tensor of `params` (layout of `c`): A ~ uniform(−1/√in, 1/√in) from a
// deterministic RNG (one core/rng.h stream seeded by `seed`, walking the adapters in layout order; same seed
// → same values), B = 0. Other tensors are left untouched.
void init_lora(const ModelConfig& c, const ParamLayout& layout, float* params, uint64_t seed);

// The base model's weights in the layout of the same model with rank-`rank` adapters of scale `scale`: every
// base tensor copied by name, adapters initialised by init_lora. *out_cfg (may be null) receives the adapted
// config. Errors: rank < 0 or above an expert matrix's smaller dimension, non-finite scale, or a base that
// already has adapters.
std::vector<float> expand_with_lora(const ModelConfig& base, const float* base_params, int rank, float scale,
                                    uint64_t seed, ModelConfig* out_cfg);

}  // namespace wattmoe
