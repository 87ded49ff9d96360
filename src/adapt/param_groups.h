// Parameter groups: which tensors test-time adaptation trains. One selection drives both the backward pass's GradMask
// (model/grad_mask.h: gradients computed only for these tensors, backward stops below the lowest one) and the
// per-element trainable mask / ranges the optimizers update.
//
// Spec string: comma-separated groups, e.g. "router,norms,lora".
//   router  every MoE layer's router (gate) matrix [E, H]
//   norms   every RMSNorm gain: input/post-attention norms, OLMoE's q/k norms, and the final norm
//   lora    every LoRA factor (A and B of each routed expert's gate/up/down; needs a model with lora_rank > 0)
//   all     every tensor (embedding and lm_head included)
//   top=N   restrict to the top N layers (layers L−N … L−1); of the non-layer tensors only the final norm (when norms
//           or all is chosen) and lm_head (when all is chosen) stay — both sit above every layer, so the backward
//           still stops at layer L−N. The embedding is never trained with top=N.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/grad_mask.h"
#include "model/params.h"

namespace wattmoe {

struct ParamGroups {
  bool router = false, norms = false, lora = false, all = false;
  int top_layers = 0;  // 0 = every layer
};

// Error naming the bad token (unknown group, empty entry, top=N with N not a positive integer) or an empty spec.
ParamGroups parse_param_groups(const std::string& spec);
std::string param_groups_str(const ParamGroups& g);  // canonical spec string

// Error when no group is chosen, lora is chosen on a model without adapters, or top_layers ∉ [0, num_layers].
void validate_param_groups(const ParamGroups& g, const ModelConfig& c);

bool in_param_groups(const ParamGroups& g, const ModelConfig& c, const ParamSpec& s);

GradMask make_grad_mask(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout);

// [layout.total()], 1 = trainable element (AdamW::set_trainable's mask).
std::vector<uint8_t> make_trainable_mask(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout);

// The trainable elements as contiguous ParamRange's (model/params.h) in layout order (adjacent tensors merged).
std::vector<ParamRange> trainable_ranges(const ParamGroups& g, const ModelConfig& c, const ParamLayout& layout);
int64_t count_elements(const std::vector<ParamRange>& ranges);

}  // namespace wattmoe
