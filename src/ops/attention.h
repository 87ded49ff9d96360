// Causal grouped-query attention for one sequence (the model loops over the batch).
//   q: [Tq, n_heads * hd] (row stride q_stride), k, v: [Tk, n_kv * hd] (row stride kv_stride), out: [Tq, n_heads * hd].
// Query t sits at position pos0 + t and sees keys 0 .. pos0 + t (so Tk ≥ pos0 + Tq; with a KV cache, pos0 is the
// number of cached tokens). Head h reads KV head h / (n_heads / n_kv). Scale 1/√hd, softmax in T.
#pragma once
#include <cstdint>

namespace wattmoe::ops {

struct AttnShape {
  int64_t Tq, Tk, pos0, n_heads, n_kv, hd, q_stride, kv_stride;
};

// probs: [n_heads, Tq, Tk] saved for backward (masked entries are 0), or null for inference.
template <class T>
void attention_fwd(const T* q, const T* k, const T* v, T* out, T* probs, const AttnShape& s);

// Accumulates dq, dk, dv (same layouts as q, k, v) from dout [Tq, n_heads * hd] and the saved probs.
template <class T>
void attention_bwd(const T* q, const T* k, const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv,
                   const AttnShape& s);

}  // namespace wattmoe::ops
