// The engine's dense ops on the GPU, forward beside backward, mirroring the CPU ops in ops/*.h (same layouts, same
// meaning of every argument; read those headers for the maths). T is float or bf16; every reduction and product
// accumulates in fp32. All pointers are device memory; every call is asynchronous on ctx.stream() unless it says it
// synchronises. Backward functions ACCUMULATE into their outputs (dx += …), as on the CPU; null outputs are skipped.
// Saved statistics (rstd, attention probabilities) are fp32 whatever T is.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/attention.h"  // AttnShape
#include "ops/cuda/context.h"
#include "ops/rope.h"       // RopeTable (host)

namespace wattmoe::cuda {

// C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, op(X) = Xᵀ when trans_x (cuBLAS, fp32 compute).
template <class T>
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, float beta, T* C, int64_t ldc);

// Many products in one call: for each group, C[M,N] = alpha·op(A)·op(B) + beta·C as gemm() with that group's M and K
// (the transposes, N, alpha, beta and the leading dimensions are shared). Groups with M = 0 are skipped; K = 0 gives
// beta·C. Small bf16 groups run as one launch (dense_gemm_grouped.cu); the same rounding rule as gemm (fp32
// accumulation, one rounding of alpha·AB + beta·C), but not the same summation order as cuBLAS.
template <class T>
struct GemmGroup {
  const T* A;
  const T* B;
  T* C;
  int64_t M, K;
};
template <class T>
void gemm_grouped(Context& ctx, bool trans_a, bool trans_b, const std::vector<GemmGroup<T>>& groups, int64_t N,
                  float alpha, int64_t lda, int64_t ldb, float beta, int64_t ldc);

// y[M,out] = x[M,in]·W[out,in]ᵀ + b (b may be null). Overwrites y.
template <class T>
void linear_fwd(Context& ctx, const T* x, const T* W, const T* b, T* y, int64_t M, int64_t in, int64_t out);
// dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy; any of dx, dW, db may be null.
template <class T>
void linear_bwd(Context& ctx, const T* x, const T* W, const T* dy, T* dx, T* dW, T* db, int64_t M, int64_t in,
                int64_t out);

// RMSNorm over rows of length dim; rstd [rows] may be null; y may alias x.
template <class T>
void rmsnorm_fwd(Context& ctx, const T* x, const T* w, T* y, float* rstd, int64_t rows, int64_t dim, double eps);
template <class T>
void rmsnorm_bwd(Context& ctx, const T* x, const T* w, const float* rstd, const T* dy, T* dx, T* dw, int64_t rows,
                 int64_t dim);

// RoPE tables on the device (float cos/sin [n_pos, half], from the host table that matches transformers).
struct DeviceRope {
  int64_t pos0 = 0, n_pos = 0, half = 0;
  DeviceBuffer<float> cos, sin;
  void upload(Context& ctx, const ops::RopeTable& t);
};
// In place on x[B·S tokens, n_heads, head_dim] (row stride `stride`); token i has position pos0 + i % S.
template <class T>
void rope_apply(Context& ctx, T* x, int64_t B, int64_t S, int64_t n_heads, int64_t head_dim, int64_t stride,
                const DeviceRope& tab, int64_t pos0, bool inverse);
// The same with one position per token: token i of the n has position pos[i] (device int32 [n]; every position must
// lie in the table — the caller checks, the kernel does not).
template <class T>
void rope_apply_at(Context& ctx, T* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t stride,
                   const DeviceRope& tab, const int32_t* pos, bool inverse);

// LoRA-merged weights for many matrices of one shape at once: for each item, merged[o, c] = bf16(W[o, c] + scale ·
// Σ_j B[o, j]·A[j, c]) over W [out, in], A [r, in], B [out, r] (fp32), the sum in order j = 0..r-1 and rounded once
// (ops/lora.h's lora_merge is the reference).
struct LoraMergeItem {
  const float* W;
  const float* A;
  const float* B;
  bf16* merged;
};
void lora_merge(Context& ctx, const std::vector<LoraMergeItem>& items, int64_t out, int64_t in, int64_t r,
                float scale);

// h = silu(g)·u over n elements; backward accumulates dg, du (either may be null).
template <class T>
void swiglu_fwd(Context& ctx, const T* g, const T* u, T* h, int64_t n);
template <class T>
void swiglu_bwd(Context& ctx, const T* g, const T* u, const T* dh, T* dg, T* du, int64_t n);

// Row-wise softmax over [rows, n] (y may alias x); dx += y ⊙ (dy − Σ y·dy).
template <class T>
void softmax_fwd(Context& ctx, const T* x, T* y, int64_t rows, int64_t n);
template <class T>
void softmax_bwd(Context& ctx, const T* y, const T* dy, T* dx, int64_t rows, int64_t n);

// Causal GQA attention over `batch` sequences at once. Sequence b reads q + b·Tq·q_stride, k/v + b·Tk·kv_stride,
// writes out + b·Tq·(n_heads·hd) and probs + b·n_heads·Tq·Tk (probs may be null for inference; masked entries 0).
template <class T>
void attention_fwd(Context& ctx, const T* q, const T* k, const T* v, T* out, float* probs, const ops::AttnShape& s,
                   int64_t batch);
// Accumulates dq, dk, dv from dout and the saved probs (same batching).
template <class T>
void attention_bwd(Context& ctx, const T* q, const T* k, const T* v, const float* probs, const T* dout, T* dq, T* dk,
                   T* dv, const ops::AttnShape& s, int64_t batch);

// The same forward without the score matrix (dense_attention_flash.cu: online softmax over 64-key tiles, tensor
// cores, fp32 accumulation; no probs, so inference only). bf16 only; the shape must pass flash_attention_supported:
// hd a multiple of 16 up to 128 and q_stride, kv_stride multiples of 8 (q, k, v 16-byte aligned).
bool flash_attention_supported(const ops::AttnShape& s);
void attention_fwd_flash(Context& ctx, const bf16* q, const bf16* k, const bf16* v, bf16* out, const ops::AttnShape& s,
                         int64_t batch);

// Decode rows over per-row KV caches (dense_attention_rows.cu; continuous batching): row r of the n has its own
// cache k_rows[r], v_rows[r] (device arrays of n device pointers; rows of kv_stride elements) and position pos[r]
// (device int32 [n]). kv_append_rows writes k[r], v[r] ([n, kvd], dense) at cache row pos[r]; attention_rows_fwd then
// attends query row r (q rows of q_stride) causally over its cache rows 0 .. pos[r] into out [n, n_heads·hd]. The
// caller keeps every pos[r] below its cache's capacity. hd ≤ 256.
template <class T>
void kv_append_rows(Context& ctx, const T* k, const T* v, int64_t n, int64_t kvd, T* const* k_dst, T* const* v_dst,
                    const int32_t* pos);
template <class T>
void attention_rows_fwd(Context& ctx, const T* q, int64_t q_stride, const T* const* k_rows, const T* const* v_rows,
                        int64_t kv_stride, const int32_t* pos, T* out, int64_t n, int64_t n_heads, int64_t n_kv,
                        int64_t hd);

// Losses over logits [rows, V]. Return the SUM over scored rows (these two synchronise: they read it back) and, when
// dlogits is not null, OVERWRITE it with scale·∂sum/∂logits (0 on rows not scored; target < 0 skips a row).
template <class T>
double nll_loss(Context& ctx, const T* logits, const int32_t* targets, int64_t rows, int64_t V, T* dlogits,
                double scale);
template <class T>
double entropy_loss(Context& ctx, const T* logits, int64_t rows, int64_t V, T* dlogits, double scale);

// out[i, :] = table[ids[i], :] for i < n; backward: dtable[ids[i], :] += dout[i, :].
template <class T>
void embedding_fwd(Context& ctx, const T* table, const int32_t* ids, T* out, int64_t n, int64_t H);
template <class T>
void embedding_bwd(Context& ctx, const int32_t* ids, const T* dout, T* dtable, int64_t n, int64_t H);

// Element-wise helpers: y += alpha·x; x = clamp(x, −lim, lim) keeping the pre-clamp copy in `pre` when not null;
// clamp backward zeroes dy where |pre| > lim; dst = convert(src).
template <class T>
void axpy(Context& ctx, float alpha, const T* x, T* y, int64_t n);
template <class T>
void clamp_fwd(Context& ctx, T* x, T* pre, float lim, int64_t n);
template <class T>
void clamp_bwd(Context& ctx, const T* pre, float lim, T* dy, int64_t n);
template <class Dst, class Src>
void convert(Context& ctx, const Src* src, Dst* dst, int64_t n);
// Many runs of one conversion in one launch per 100 runs (a bf16 model's parameters after each step, its master
// gradients: one run per stretch of tensors that move alike, ~190 conversions a step on an 8-layer model):
// dst[r.dst + i] = convert(src[r.src + i]) for i < r.n and every run r; with `accumulate`, dst += convert(src) in
// fp32, rounded once to Dst (the same bits as convert then axpy with alpha 1). Runs must not overlap in dst; elements
// of dst outside every run are not touched.
struct ConvertRun {
  int64_t src, dst, n;  // element offsets into src and dst, and the run's length (≥ 0)
};
template <class Dst, class Src>
void convert_runs(Context& ctx, const Src* src, Dst* dst, const std::vector<ConvertRun>& runs, bool accumulate);

// Gated rows (Qwen2-MoE shared expert): out[t,:] += sigmoid(gate[t])·y[t,:]; backward: dy[t,:] += s·dout[t,:],
// dgate[t] += s(1−s)·⟨dout[t], y[t]⟩ (either may be null).
template <class T>
void gated_add_fwd(Context& ctx, const T* gate, const T* y, T* out, int64_t rows, int64_t H);
template <class T>
void gated_add_bwd(Context& ctx, const T* gate, const T* y, const T* dout, T* dy, T* dgate, int64_t rows, int64_t H);

// Optimiser on fp32 master weights (model/optimizer.h semantics): decoupled weight decay only where decay[i] != 0,
// update only where trainable[i] != 0 (null = all). t is the 1-based step. sum_squares synchronises.
void adamw_step(Context& ctx, float* params, const float* grads, float* m, float* v, const uint8_t* decay,
                const uint8_t* trainable, int64_t n, double lr, double beta1, double beta2, double eps,
                double weight_decay, int64_t t);
double sum_squares(Context& ctx, const float* x, int64_t n);
void scale(Context& ctx, float* x, float alpha, int64_t n);

// Test-time adaptation's optimizer step on the device (adapt/adapt_optimizer.h's AdaptOptimizer::step is the
// reference, element for element: the same explicitly rounded float operations, the multiplier's blend in double).
// The trainable elements are packed back to back in pieces, sorted by `flat`: piece j is params[offset, offset+numel)
// and packed[flat, flat+numel); within a piece the decay and the update's multiplier are constant.
struct PackedPiece {
  int64_t offset = 0, flat = 0, numel = 0;
  double mult = 1;  // ≠ 1: θ ← θ_before + mult·(θ_stepped − θ_before), in double
  int decay = 0;    // AdamW's decoupled weight decay applies (the piece is part of a matrix)
};
// packed[flat + i] = grads[offset + i] over every piece, and those gradients are zeroed (they moved out).
void pack_grads(Context& ctx, float* grads, const PackedPiece* pieces, int n_pieces, int64_t total, float* packed);
// Copies that move nothing out: gather_pieces packed[flat + i] = from[offset + i] over every piece, scatter_pieces
// to[offset + i] = packed[flat + i] (elements outside the pieces untouched). A runner keeps weight sets of the
// trainable ranges on the device with them.
void gather_pieces(Context& ctx, const float* from, const PackedPiece* pieces, int n_pieces, int64_t total,
                   float* packed);
void scatter_pieces(Context& ctx, const float* packed, const PackedPiece* pieces, int n_pieces, int64_t total,
                    float* to);
struct PackedStep {
  bool adamw = true;
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;  // adamw
  double momentum = 0;                                                      // sgd
  bool nesterov = false;                                                    // sgd
  int64_t t = 1;          // adamw: the 1-based step (bias corrections on the host in double, as AdamW::step)
  float grad_scale = 1;   // the clip's factor float(max_norm / norm); 1 when the norm is within max_norm
};
// One step over the pieces with the packed gradient g (times grad_scale when ≠ 1): AdamW with moments m, v (packed),
// or SGD with momentum (m is the velocity; v unused).
void packed_optimizer_step(Context& ctx, float* params, const float* g, float* m, float* v, const PackedPiece* pieces,
                           int n_pieces, int64_t total, const PackedStep& s);

}  // namespace wattmoe::cuda
