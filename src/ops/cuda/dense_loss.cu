// Losses over logits [rows, V] on the GPU (dense_ops.h; maths of ops/loss.h), one block per row. Row max in fp32,
// Σ exp(x − max) of fp32 exponentials accumulated in double, log-sum-exp in double; per-row losses (double) are
// read back and summed on the host in row order, as the CPU does, so both calls synchronise the stream.
// dlogits (when not null) is OVERWRITTEN with scale·∂sum/∂logits: log p = x − lse in double, rounded to fp32, the
// rest in fp32, the result rounded once: nll: scale·(p − [j = target]); entropy: −scale·p·(log p + H). Rows with a
// target < 0 give 0 loss and 0 gradient; a target ≥ V makes that row's loss NaN (the host cannot check targets
// without reading them back) and its gradient 0.
#include <vector>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

// Row max and log Σ exp, in every thread of the block.
template <class T>
__device__ void row_lse(const T* x, int64_t V, float* shf, double* shd, float& mx, double& lse) {
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, to_f(x[j]));
  mx = block_max(m, shf);
  double s = 0;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(expf(to_f(x[j]) - mx));
  s = block_sum(s, shd);
  lse = double(mx) + log(s);
}

template <class T>
__global__ void nll_kernel(const T* logits, const int32_t* targets, int64_t V, T* dlogits, float scale,
                           double* row_loss) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  T* dx = dlogits ? dlogits + r * V : nullptr;
  const int32_t tgt = targets[r];
  if (tgt < 0 || tgt >= V) {  // uniform across the block
    if (threadIdx.x == 0) row_loss[r] = tgt < 0 ? 0.0 : NAN;
    if (dx)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dx[j] = from_f<T>(0.f);
    return;
  }
  float mx;
  double lse;
  row_lse(x, V, shf, shd, mx, lse);
  if (threadIdx.x == 0) row_loss[r] = lse - double(to_f(x[tgt]));
  if (!dx) return;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float p = expf(float(double(to_f(x[j])) - lse));  // the exponent in double, as the CPU
    dx[j] = from_f<T>(scale * (j == tgt ? p - 1.f : p));
  }
}

template <class T>
__global__ void entropy_kernel(const T* logits, int64_t V, T* dlogits, float scale, double* row_loss) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  float mx;
  double lse;
  row_lse(x, V, shf, shd, mx, lse);
  double h = 0;  // −Σ p log p
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float lp = float(double(to_f(x[j])) - lse);  // log p in double, rounded once
    h -= double(expf(lp)) * double(lp);
  }
  h = block_sum(h, shd);
  if (threadIdx.x == 0) row_loss[r] = h;
  if (!dlogits) return;
  T* dx = dlogits + r * V;
  const float fh = float(h);
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float lp = float(double(to_f(x[j])) - lse);
    dx[j] = from_f<T>(-scale * expf(lp) * (lp + fh));
  }
}

double sum_rows(Context& ctx, const double* d_rows, int64_t rows) {
  std::vector<double> h(static_cast<size_t>(rows));
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(h.data(), d_rows, size_t(rows) * sizeof(double), cudaMemcpyDeviceToHost,
                                    ctx.stream()));
  ctx.sync();
  double s = 0;
  for (double v : h) s += v;  // row order, as ops::nll_loss
  return s;
}

}  // namespace

template <class T>
double nll_loss(Context& ctx, const T* logits, const int32_t* targets, int64_t rows, int64_t V, T* dlogits,
                double scale) {
  if (rows <= 0) return 0;
  WATTMOE_DENSE_REQUIRE(V > 0 && rows <= INT32_MAX, "nll_loss: bad shape");
  Scratch<double> per_row(ctx.stream(), size_t(rows));
  nll_kernel<T><<<unsigned(rows), row_threads(V), 0, ctx.stream()>>>(logits, targets, V, dlogits, float(scale),
                                                                     per_row.get());
  WATTMOE_CUDA_LAUNCHED();
  return sum_rows(ctx, per_row.get(), rows);
}

template <class T>
double entropy_loss(Context& ctx, const T* logits, int64_t rows, int64_t V, T* dlogits, double scale) {
  if (rows <= 0) return 0;
  WATTMOE_DENSE_REQUIRE(V > 0 && rows <= INT32_MAX, "entropy_loss: bad shape");
  Scratch<double> per_row(ctx.stream(), size_t(rows));
  entropy_kernel<T><<<unsigned(rows), row_threads(V), 0, ctx.stream()>>>(logits, V, dlogits, float(scale),
                                                                         per_row.get());
  WATTMOE_CUDA_LAUNCHED();
  return sum_rows(ctx, per_row.get(), rows);
}

#define INST(T)                                                                                        \
  template double nll_loss<T>(Context&, const T*, const int32_t*, int64_t, int64_t, T*, double);      \
  template double entropy_loss<T>(Context&, const T*, int64_t, int64_t, T*, double);
WATTMOE_INSTANTIATE_BOTH(INST)
#undef INST

}  // namespace wattmoe::cuda
