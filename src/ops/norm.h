// RMSNorm over the last dimension: y = w ⊙ x · r, r = (mean(x²) + eps)^-½, computed in T (fp32 on CPU, as HF does).
// Rows run in parallel on the default pool; dw is split by columns, each still summed over the rows in order, so
// results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace wattmoe::ops {

// x, y: [rows, dim]; w: [dim]; rstd: [rows] saved for backward (may be null). y may alias x.
template <class T>
void rmsnorm_fwd(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t dim, double eps);

// Accumulates dx += ∂L/∂x and dw += ∂L/∂w (either may be null), given the forward input x and saved rstd.
template <class T>
void rmsnorm_bwd(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t dim);

}  // namespace wattmoe::ops
