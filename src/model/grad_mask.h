// Which parameter tensors a backward pass must compute gradients for (test-time adaptation trains a few: router,
// norms, LoRA, or only the top layers). With a mask, Transformer::backward
//   - skips the weight-gradient work of every tensor whose `needs` is 0 (its region of the gradient buffer is left
//     untouched — not zeroed);
//   - stops below the lowest layer that holds a needed tensor (no input gradient into earlier layers, no embedding
//     gradient unless the embedding is needed);
//   - gives every needed tensor bitwise the gradient the full backward gives it (same operations, same order).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/params.h"

namespace wattmoe {

struct GradMask {
  std::vector<uint8_t> needs;  // one per ParamLayout spec (layout.specs() order); 1 = compute its gradient

  static GradMask all(const ParamLayout& layout);
  static GradMask none(const ParamLayout& layout);
  static GradMask select(const ParamLayout& layout, const std::function<bool(const ParamSpec&)>& pred);

  bool any() const;
  // How deep backward must go: −1 when the embedding is needed (it sits below layer 0; a tied lm_head is the
  // embedding), else the lowest layer index holding a needed tensor, else the number of layers (only the
  // final norm and/or lm_head needed, or nothing at all — no layer's backward runs).
  int lowest_layer(const ParamLayout& layout) const;
  bool need(const ParamSpec& s, const ParamLayout& layout) const;  // needs[] entry of a spec of `layout`
};

}  // namespace wattmoe
