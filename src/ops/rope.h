// Rotary position embedding, the "rotate half" variant HF uses for Llama/Mixtral/OLMoE/Qwen:
// for a head vector x of size d = 2h, x' = x·cos + rotate_half(x)·sin with rotate_half(x) = [-x[h:], x[:h]] and
// angle_i = pos · θ^(-2i/d) for i < h, repeated for both halves.
#pragma once
#include <cstdint>
#include <vector>

namespace wattmoe::ops {

// cos/sin tables [n_pos, d/2] for positions pos0 .. pos0+n_pos-1. The inverse frequencies and angles are computed
// in float32 exactly as transformers does (so positions match bit for bit); cos/sin are then evaluated in double.
struct RopeTable {
  int64_t pos0 = 0, n_pos = 0, half = 0;
  std::vector<double> cos, sin;
};
RopeTable rope_table(int64_t pos0, int64_t n_pos, int64_t head_dim, double theta);

// In place on x[T, n_heads, head_dim] (row stride `stride` elements between tokens); token t has position
// pos0 + t, which must lie inside the table. inverse = true applies the transpose rotation (the backward).
template <class T>
void rope_apply(T* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t stride, const RopeTable& tab,
                int64_t pos0, bool inverse);

}  // namespace wattmoe::ops
