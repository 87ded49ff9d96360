// Optimiser kernels on fp32 master weights (dense_ops.h; semantics of train/optimizer.cpp).
// adamw_step is AdamW::step element for element: the bias corrections are computed on the host from t in double
// exactly as the CPU does, and the update uses explicitly rounded multiplies/adds (no FMA contraction) and IEEE
// sqrt/division, so it gives the CPU's bits. sum_squares is a deterministic two-pass reduction in double (a fixed
// grid of per-block partials, then one block adds them in order) and synchronises; scale: x *= alpha.
#include <cmath>

#include "ops/cuda/dense_common.cuh"
#include "ops/cuda/dense_ops.h"

namespace wattmoe::cuda {

namespace {

struct AdamArgs {
  float b1, omb1, b2, omb2, step_size, bias2, eps, decay;
};

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, const uint8_t* decay_mask,
                             const uint8_t* trainable, int64_t n, AdamArgs a) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (trainable && !trainable[i]) continue;
    const float gi = g[i];
    const float mi = __fadd_rn(__fmul_rn(a.b1, m[i]), __fmul_rn(a.omb1, gi));
    const float vi = __fadd_rn(__fmul_rn(a.b2, v[i]), __fmul_rn(__fmul_rn(a.omb2, gi), gi));
    m[i] = mi, v[i] = vi;
    float pi = p[i];
    if (decay_mask && decay_mask[i]) pi = __fmul_rn(pi, a.decay);
    const float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.bias2), a.eps);
    p[i] = __fsub_rn(pi, __fdiv_rn(__fmul_rn(a.step_size, mi), den));
  }
}

constexpr int kSumBlocks = 256, kSumThreads = 256;

__global__ void sum_squares_partial(const float* x, int64_t n, double* part) {
  __shared__ double sh[32];
  double s = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    s += double(x[i]) * double(x[i]);
  s = block_sum(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void sum_partials(const double* part, int n, double* out) {
  __shared__ double sh[32];
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) *out = s;
}

__global__ void scale_kernel(float* x, float alpha, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= alpha;
}

}  // namespace

// decay = null means no element is decayed (the CPU decays matrices only, through its mask).
void adamw_step(Context& ctx, float* params, const float* grads, float* m, float* v, const uint8_t* decay,
                const uint8_t* trainable, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t t) {
  if (n <= 0) return;
  WATTMOE_DENSE_REQUIRE(t >= 1, "adamw_step: t is the 1-based step");
  const double c1 = 1.0 - std::pow(beta1, double(t)), c2 = 1.0 - std::pow(beta2, double(t));
  AdamArgs a;
  a.b1 = float(beta1), a.omb1 = float(1 - beta1), a.b2 = float(beta2), a.omb2 = float(1 - beta2);
  a.step_size = float(lr / c1), a.bias2 = float(1.0 / std::sqrt(c2)), a.eps = float(eps);
  a.decay = float(1.0 - lr * weight_decay);
  adamw_kernel<<<elem_blocks(n), 256, 0, ctx.stream()>>>(params, grads, m, v, decay, trainable, n, a);
  WATTMOE_CUDA_LAUNCHED();
}

double sum_squares(Context& ctx, const float* x, int64_t n) {
  if (n <= 0) return 0;
  Scratch<double> part(ctx.stream(), kSumBlocks + 1);
  sum_squares_partial<<<kSumBlocks, kSumThreads, 0, ctx.stream()>>>(x, n, part.get());
  WATTMOE_CUDA_LAUNCHED();
  sum_partials<<<1, kSumThreads, 0, ctx.stream()>>>(part.get(), kSumBlocks, part.get() + kSumBlocks);
  WATTMOE_CUDA_LAUNCHED();
  double r = 0;
  WATTMOE_CUDA_CALL(cudaMemcpyAsync(&r, part.get() + kSumBlocks, sizeof(double), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.sync();
  return r;
}

void scale(Context& ctx, float* x, float alpha, int64_t n) {
  if (n <= 0) return;
  scale_kernel<<<elem_blocks(n), 256, 0, ctx.stream()>>>(x, alpha, n);
  WATTMOE_CUDA_LAUNCHED();
}

}  // namespace wattmoe::cuda
