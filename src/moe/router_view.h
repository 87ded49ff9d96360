// Plain views of each layer's router outputs from one forward pass, whoever ran it (the CPU model's activations, the
// GPU model's host copies): the host-side MoE maths (aux losses, test-time router objectives) reads these and nothing
// model-specific. Entries of dense layers are empty (null pointers).
#pragma once
#include <cstdint>
#include <vector>

namespace wattmoe {

template <class T>
struct RouterView {
  const T* logits = nullptr;  // [N, E] router logits
  const T* probs = nullptr;   // [N, E] softmax(logits)
  T* drouter = nullptr;       // [N, E] ∂L/∂logits that the model's backward adds to its own (objectives ADD into it)
  bool moe() const { return probs != nullptr; }
};

template <class T>
struct RouterViews {
  int64_t tokens = 0;  // N
  int experts = 0;     // E
  int top_k = 0;       // the model's k (the load-balancing loss counts the model's own top-k selections)
  std::vector<RouterView<T>> layers;  // one per model layer
  int moe_layers() const {
    int n = 0;
    for (const RouterView<T>& v : layers) n += v.moe() ? 1 : 0;
    return n;
  }
};

}  // namespace wattmoe
