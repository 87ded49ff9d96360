// Row-wise softmax and its backward over x[rows, n].
#pragma once
#include <cstdint>

namespace wattmoe::ops {

template <class T>
void softmax_fwd(const T* x, T* y, int64_t rows, int64_t n);  // y may alias x
// dx += y ⊙ (dy − Σ y·dy), from the softmax output y.
template <class T>
void softmax_bwd(const T* y, const T* dy, T* dx, int64_t rows, int64_t n);
template <class T>
T logsumexp(const T* x, int64_t n);

}  // namespace wattmoe::ops
