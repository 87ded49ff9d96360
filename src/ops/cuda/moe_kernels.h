// Launchers of the MoE layer kernels (one struct of arguments each). All pointers are device pointers; all
// launches are asynchronous on `s`, never read results back to the host, and are safe to capture in a CUDA graph.
// Layouts (HF, row-major): x [T,H]; router [E,H]; gate, up [E,I,H]; down [E,H,I]; out [T,H].
// No device code here: moe_layer.cpp (host compiler) includes it; the kernels include it through moe_common.cuh.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/moe_route_policy.h"

namespace wattmoe::cuda {

using bf16 = __nv_bfloat16;

// Throws wattmoe::Error naming the failed call, file and line (defined in moe_layer.cpp).
[[noreturn]] void cuda_fail(cudaError_t e, const char* call, const char* file, int line);

#define WATTMOE_CUDA_CALL(call)                                                    \
  do {                                                                             \
    cudaError_t e_ = (call);                                                       \
    if (e_ != cudaSuccess) ::wattmoe::cuda::cuda_fail(e_, #call, __FILE__, __LINE__); \
  } while (0)
#define WATTMOE_CUDA_LAUNCHED() WATTMOE_CUDA_CALL(cudaGetLastError())

constexpr int kMaxExperts = 256;     // routing and permutation keep per-expert state in shared memory
constexpr int kDecodeMaxTokens = 8;  // the decode kernels keep one accumulator per (row, token) in registers

// (a) moe_route.cu: routing of one layer-step under the policy block `policy` (device memory, read at every launch;
// ops/moe_route_policy.h, semantics of moe/policy.h). Router logits [T,E] (fp32 dot products rounded to bf16, as a
// bf16 nn.Linear gives), probabilities [T,E] = softmax in fp32 (expf(l - max) / Σ), then per token the policy's
// experts in its slot order (descending probability; descending logit - λ·c̃_e for cost with λ != 0), ties to the
// lower expert index, masked experts never; ids [T,S] with -1 in the unused slots at the end of each row (S = the
// layer's slot capacity, K <= S slots used at most); weights [T,S] = the selected experts' probabilities,
// renormalised over the used slots when `renorm` and their fp32 sum (slot order) is > 0, 0 in unused slots
// (moe/routing.h's route_weights, same fp32 operations); counts[E] += pairs routed to e. Step-level policies
// (budget; cost with λ != 0 and reuse_min_tokens > 0) finish in launch_route_step, which must follow on the stream:
// for them this kernel writes its first-pass counts into counts1 instead of counts. counts, counts1 and status must
// be zero before the launch (one memset: they are adjacent). Out-of-range knobs (a block that
// validate_route_policy would reject: policy id, K > min(S, E), k_min outside 1..K, every expert pruned) are clamped
// into range so that no access leaves the buffers, and set bits of *status (kRouteFault*).
constexpr int kRouteFaultPolicy = 1;  // policy id not in 0..5 (routed as topk)
constexpr int kRouteFaultK = 2;       // K = k_max (or k) outside 1..min(S, E) (clamped)
constexpr int kRouteFaultKMin = 4;    // k_min outside 1..K (clamped)
constexpr int kRouteFaultMask = 8;    // every expert pruned (no expert selected)
constexpr int kRouteFaultCosts = 16;  // cost/budget without cost_experts == E (missing costs read as 0)
struct RouteArgs {
  const bf16* x;
  const bf16* router;
  int T, H, E, k;  // k: the model's top-k (K when the block's k_max = 0)
  int slots;       // S: row stride of ids / weights
  bool renorm;
  const MoeRoutePolicy* policy;  // device
  bf16* logits;   // [T,E]
  float* probs;   // [T,E]
  int* topk_ids;  // [T,S]
  float* topk_w;  // [T,S]
  int* counts;    // [E]
  int* counts1;   // [E] first-pass counts of step-level policies
  int* status;    // [1] fault bits, OR-ed
};
void launch_route(const RouteArgs& a, cudaStream_t s);

// (a') moe_route.cu: the step-level part of routing, launched right after launch_route (always: the policy lives in
// device memory, so the launch cannot depend on it; for other policies every CTA returns at once).
//  cost, λ != 0, reuse_min_tokens = m > 0: second pass. c2_e = b_e for experts that >= m tokens chose in the first
//     pass (counts1), else c_e = a_e/T + b_e; same normaliser (mean of c_e); every token re-selected (one warp per
//     token), ids / weights rewritten, counts filled.
//  budget: one CTA (CTA 0) runs moe/policy.cpp's greedy exactly: the floor (each token's first k_min slots) priced
//     in (token, slot) order; the candidates (slots k_min..K-1 of each row) sorted per expert by probability
//     (descending, stable: lower token first) with a stable LSD radix sort in global scratch; the greedy by weight
//     per joule with double arithmetic in the CPU's order of operations; rows compacted in slot order, weights and
//     counts recomputed. When an upper bound of the energy of keeping every candidate fits the budget (budget_j =
//     inf always does), the greedy is skipped: the CPU would keep them all.
// Scratch (budget): cand_key[2], cand_p[2] ping-pong uint32 / int [T·S], cand_ratio double [T·S], cand_tok int [T·S],
// keep uint8 [T·S]; contents need no initialisation.
struct RouteStepArgs {
  int T, E, k, slots;
  bool renorm;
  const MoeRoutePolicy* policy;  // device
  const bf16* logits;            // [T,E]
  const float* probs;            // [T,E]
  int* topk_ids;                 // [T,S], rewritten
  float* topk_w;                 // [T,S], rewritten
  int* counts;                   // [E], zero on entry for the policies this kernel finishes
  const int* counts1;            // [E] first-pass counts
  uint32_t* cand_key[2];
  int* cand_p[2];
  double* cand_ratio;
  int* cand_tok;
  uint8_t* keep;
};
void launch_route_step(const RouteStepArgs& a, cudaStream_t s);

// (b) moe_route.cu: block-aligned permutation. Expert e owns padded rows [off[e], off[e+1]), off[e+1]-off[e] =
// counts[e] rounded up to block_m; inside an expert rows follow (token, slot) order (stable, like build_dispatch).
// Pairs p = t*S+s with topk_ids[p] = -1 (unused slots) get no row and leave inv[p] unwritten.
// sorted_token[r] = source token or -1 (padding), sorted_w[r] = routing weight (0 on padding), inv[t*S+s] = row,
// tile_expert[m] = expert of M-tile m or -1 past the last used tile. One CTA per 1024 pairs; no host synchronisation.
struct PermuteArgs {
  const int* topk_ids;  // [T,S]
  const float* topk_w;  // [T,S]
  const int* counts;
  int T, slots, E, block_m;  // slots: S, the row stride of topk_ids
  int max_rows, max_tiles;  // capacity: rows >= T*S + E*(block_m-1) rounded to block_m; tiles = rows / block_m
  int* sorted_token;
  float* sorted_w;
  int* inv;
  int* tile_expert;
};
void launch_permute(const PermuteArgs& a, cudaStream_t s);

// (d) moe_route.cu: out[t] = Σ_{s : ids[t*S+s] >= 0} y[row(t,s)] in fp32, rounded once to bf16 (a token with no
// used slot gets 0); row = inv[t*S+s], or t*S+s when inv is null (decode layout). Deterministic: fixed slot order,
// no atomics.
void launch_combine(const bf16* y, const int* inv, const int* ids, int T, int slots, int H, bf16* out, cudaStream_t s);

// (c) grouped expert GEMMs over the permuted rows, bf16 tensor cores, fp32 accumulate. Launched over max_tiles
// M-tiles; a tile whose tile_expert is -1 exits at once. block_m = 64: moe_gemm.cu (mma.sync, any sm_80+ GPU);
// block_m = 128: moe_gemm_sm90.cu (wgmma, sm_90a only; its default TMA variant first gathers x into xs).
//  gate_up: h[r, i] = bf16( silu(x[tok_r]·gate[e,i]) · (x[tok_r]·up[e,i]) ), x rows gathered through sorted_token
//           (padding rows read as zeros and give h = 0, except in 64-row halves of padding that the sm90 TMA kernels
//           skip: there h is left as it was, and down skips the same halves).
//  down:    y[r, n] = bf16( sorted_w[r] · Σ_i h[r,i]·down[e,n,i] ), written for real rows (the sm90 TMA-store
//           epilogue also writes the padding rows of the 64-row halves it computes, as zeros; nothing reads them).
// Requirements (checked by the host API): H % 8 == 0 and I % 8 == 0 (16-byte rows).
struct GroupedGemmArgs {
  const bf16* x;
  const bf16* gate;
  const bf16* up;
  const bf16* down;
  const int* sorted_token;
  const float* sorted_w;
  const int* tile_expert;
  int H, I, max_tiles, block_m;
  bf16* h;  // [max_rows, I]
  bf16* y;  // [max_rows, H]
  int E;    // experts (the sm90 TMA path describes gate/up/down as [E, rows, cols] tensors)
  bf16* xs;  // [max_rows, H] scratch: x rows gathered into permuted order (sm90 TMA gate_up; unused otherwise)
  int pairs;  // T·k routed rows expected (model k; the sm90 launchers pick their kernel variant by it)
  int sm90_kernel;  // MoeCudaOptions::sm90_kernel: 0 auto, 1 cp.async, 2 TMA, 3 / 4 TMA + multicast in clusters of 2 / 4
  int* sched;       // [2] tile counters of the persistent sm90 TMA kernels (gate_up, down); zeroed by their gather
  bool static_schedule;  // MoeCudaOptions::sm90_static_schedule (fixed-stride order, no padding skip)
  int sm90_store = 0;    // MoeCudaOptions::sm90_store: epilogue of kernels 2-4 (0 auto = 3, 1 registers, 2 TMA store in
                         // gate_up, 3 in both; with 3, down also writes its padding rows of used halves, as zeros)
};
// Raise the kernels' dynamic shared-memory limits on the current device; call once per device before launching
// (the sm90 one only on compute capability 9.x).
void prepare_gemm_kernels();
void prepare_gemm_sm90_kernels();
void launch_gate_up(const GroupedGemmArgs& a, cudaStream_t s);  // block_m = 64
void launch_down(const GroupedGemmArgs& a, cudaStream_t s);
void launch_gate_up_sm90(const GroupedGemmArgs& a, cudaStream_t s);  // block_m = 128
void launch_down_sm90(const GroupedGemmArgs& a, cudaStream_t s);

// (e) moe_decode.cu: few tokens (T <= kDecodeMaxTokens), bound by weight bandwidth. A CTA takes a slice of one
// expert's rows, exits if the expert has no tokens, streams the slice once with 16-byte loads and computes every
// token routed to it (pair p = t*S+s; unused slots, -1, are routed nowhere). h_dec [T*S, I] and y_dec [T*S, H] are
// indexed by pair; rows of unused pairs are left unwritten.
// Weight-only quantised experts (wq = 1 fp8 e4m3, 2 int8; ops/quant.h): gate, up, down then point at 1-byte codes in
// the same layouts, and gate_s, up_s [E,I], down_s [E,H] at the fp32 scale of each weight row; each lane streams 16
// codes (16 bytes) per load, converts them in registers and applies the row's scale once to the finished dot product.
// Quantised weights need H % 16 == 0 and I % 16 == 0.
struct DecodeArgs {
  const bf16* x;
  const void* gate;  // bf16, or 1-byte codes (wq)
  const void* up;
  const void* down;
  const int* topk_ids;  // [T,S]
  const float* topk_w;  // [T,S]
  const int* counts;
  int T, slots, H, I, E;  // slots: S, the row stride of topk_ids
  bf16* h_dec;
  bf16* y_dec;
  int wq = 0;  // 0 bf16 weights, 1 fp8 e4m3 codes, 2 int8 codes
  const float* gate_s = nullptr;
  const float* up_s = nullptr;
  const float* down_s = nullptr;
};
void launch_decode_gate_up(const DecodeArgs& a, cudaStream_t s);
void launch_decode_down(const DecodeArgs& a, cudaStream_t s);

}  // namespace wattmoe::cuda
