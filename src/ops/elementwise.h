// Element-wise ops of the layer program beside the activations: the CPU reference of ops/cuda/dense_ops.h's clamp
// and gated add (same arguments, same meaning; the GPU takes the limit as float).
//   clamp      OLMoE's clip_qkv: x = clamp(x, −lim, lim) in place, the values before it kept in `pre` (not null);
//              backward zeroes dy where pre lies outside [−lim, lim] (torch.clamp's gradient: the closed interval
//              passes it). A NaN stays NaN and passes its gradient.
//   gated add  Qwen2-MoE's shared expert: out[t,:] += s_t·y[t,:] with s_t = sigmoid(gate[t]); backward
//              accumulates dy[t,:] += s_t·dout[t,:] and dgate[t] += s_t(1 − s_t)·⟨dout[t,:], y[t,:]⟩ (either may be
//              null; the dot product summed in column order).
#pragma once
#include <cstdint>

namespace wattmoe::ops {

template <class T>
void clamp_fwd(T* x, T* pre, T lim, int64_t n);
template <class T>
void clamp_bwd(const T* pre, T lim, T* dy, int64_t n);

template <class T>
void gated_add_fwd(const T* gate, const T* y, T* out, int64_t rows, int64_t H);
template <class T>
void gated_add_bwd(const T* gate, const T* y, const T* dout, T* dy, T* dgate, int64_t rows, int64_t H);

}  // namespace wattmoe::ops
