// Optimiser kernels on fp32 master weights (dense_ops.h; semantics of model/optimizer.cpp, and for the packed step of
// adapt/adapt_optimizer.cpp and adapt/sgd.cpp).
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

// AdamW::step for one element: m and v updated in place, the stepped parameter returned (p decayed first if decay).
__device__ float adamw_element(float p, float g, float& m, float& v, bool decay, const AdamArgs& a) {
  const float mi = __fadd_rn(__fmul_rn(a.b1, m), __fmul_rn(a.omb1, g));
  const float vi = __fadd_rn(__fmul_rn(a.b2, v), __fmul_rn(__fmul_rn(a.omb2, g), g));
  m = mi, v = vi;
  if (decay) p = __fmul_rn(p, a.decay);
  const float den = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), a.bias2), a.eps);
  return __fsub_rn(p, __fdiv_rn(__fmul_rn(a.step_size, mi), den));
}

// The host half: bias corrections from t in double, exactly as AdamW::step computes them.
AdamArgs adam_args(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t t,
                   const char* bad_t_message) {
  WATTMOE_DENSE_REQUIRE(t >= 1, bad_t_message);
  const double c1 = 1.0 - std::pow(beta1, double(t)), c2 = 1.0 - std::pow(beta2, double(t));
  AdamArgs a;
  a.b1 = float(beta1), a.omb1 = float(1 - beta1), a.b2 = float(beta2), a.omb2 = float(1 - beta2);
  a.step_size = float(lr / c1), a.bias2 = float(1.0 / std::sqrt(c2)), a.eps = float(eps);
  a.decay = float(1.0 - lr * weight_decay);
  return a;
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, const uint8_t* decay_mask,
                             const uint8_t* trainable, int64_t n, AdamArgs a) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (trainable && !trainable[i]) continue;
    p[i] = adamw_element(p[i], g[i], m[i], v[i], decay_mask && decay_mask[i], a);
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

// The piece holding packed element i: the last piece whose flat start is ≤ i (pieces sorted by flat, none empty).
__device__ int piece_of(const PackedPiece* pieces, int n, int64_t i) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (pieces[mid].flat <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__global__ void pack_grads_kernel(float* grads, const PackedPiece* pieces, int n_pieces, int64_t total,
                                  float* packed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const PackedPiece& pc = pieces[piece_of(pieces, n_pieces, i)];
    float* g = grads + pc.offset + (i - pc.flat);
    packed[i] = *g;
    *g = 0.f;
  }
}

__global__ void move_pieces_kernel(const float* from, const PackedPiece* pieces, int n_pieces, int64_t total,
                                   float* to, bool gather) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const PackedPiece& pc = pieces[piece_of(pieces, n_pieces, i)];
    const int64_t at = pc.offset + (i - pc.flat);
    if (gather) to[i] = from[at];
    else to[at] = from[i];
  }
}

struct StepArgs {
  int adamw, nesterov;
  AdamArgs adam;  // adamw
  float mu, lr;   // sgd
  float grad_scale;
};

__global__ void packed_step_kernel(float* params, const float* g, float* m, float* v, const PackedPiece* pieces,
                                   int n_pieces, int64_t total, StepArgs a) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const PackedPiece& pc = pieces[piece_of(pieces, n_pieces, i)];
    float* p = params + pc.offset + (i - pc.flat);
    const float before = *p;
    const float gi = a.grad_scale == 1.f ? g[i] : __fmul_rn(g[i], a.grad_scale);
    float after;
    if (a.adamw) {  // AdamW::step
      after = adamw_element(before, gi, m[i], v[i], pc.decay, a.adam);
    } else {  // SgdMomentum::step
      const float vel = __fadd_rn(__fmul_rn(a.mu, m[i]), gi);
      m[i] = vel;
      const float d = a.nesterov ? __fadd_rn(gi, __fmul_rn(a.mu, vel)) : vel;
      after = __fsub_rn(before, __fmul_rn(a.lr, d));
    }
    // AdaptOptimizer::step's per-group rate: θ_before + mult·(θ_stepped − θ_before) in double
    *p = pc.mult == 1.0 ? after : float(__dadd_rn(double(before), __dmul_rn(pc.mult, __dsub_rn(double(after), double(before)))));
  }
}

}  // namespace

void pack_grads(Context& ctx, float* grads, const PackedPiece* pieces, int n_pieces, int64_t total, float* packed) {
  if (total <= 0) return;
  pack_grads_kernel<<<elem_blocks(total), 256, 0, ctx.stream()>>>(grads, pieces, n_pieces, total, packed);
  WATTMOE_CUDA_LAUNCHED();
}

void gather_pieces(Context& ctx, const float* from, const PackedPiece* pieces, int n_pieces, int64_t total,
                   float* packed) {
  if (total <= 0) return;
  move_pieces_kernel<<<elem_blocks(total), 256, 0, ctx.stream()>>>(from, pieces, n_pieces, total, packed, true);
  WATTMOE_CUDA_LAUNCHED();
}

void scatter_pieces(Context& ctx, const float* packed, const PackedPiece* pieces, int n_pieces, int64_t total,
                    float* to) {
  if (total <= 0) return;
  move_pieces_kernel<<<elem_blocks(total), 256, 0, ctx.stream()>>>(packed, pieces, n_pieces, total, to, false);
  WATTMOE_CUDA_LAUNCHED();
}

void packed_optimizer_step(Context& ctx, float* params, const float* g, float* m, float* v, const PackedPiece* pieces,
                           int n_pieces, int64_t total, const PackedStep& s) {
  if (total <= 0) return;
  StepArgs a{};
  a.adamw = s.adamw ? 1 : 0, a.nesterov = s.nesterov ? 1 : 0, a.grad_scale = s.grad_scale;
  if (s.adamw) {
    a.adam = adam_args(s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.t,
                       "packed_optimizer_step: t is the 1-based step");
  } else {
    a.mu = float(s.momentum), a.lr = float(s.lr);
  }
  packed_step_kernel<<<elem_blocks(total), 256, 0, ctx.stream()>>>(params, g, m, v, pieces, n_pieces, total, a);
  WATTMOE_CUDA_LAUNCHED();
}

// decay = null means no element is decayed (the CPU decays matrices only, through its mask).
void adamw_step(Context& ctx, float* params, const float* grads, float* m, float* v, const uint8_t* decay,
                const uint8_t* trainable, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t t) {
  if (n <= 0) return;
  const AdamArgs a = adam_args(lr, beta1, beta2, eps, weight_decay, t, "adamw_step: t is the 1-based step");
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
