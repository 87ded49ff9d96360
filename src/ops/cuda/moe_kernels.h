// Launchers of the MoE layer kernels (one struct of arguments each). All pointers are device pointers; all
// launches are asynchronous on `s`, never read results back to the host, and are safe to capture in a CUDA graph.
// Layouts (HF, row-major): x [T,H]; router [E,H]; gate, up [E,I,H]; down [E,H,I]; out [T,H].
// No device code here: moe_layer.cpp (host compiler) includes it; the kernels include it through moe_common.cuh.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

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

// (a) moe_route.cu: router logits [T,E] (fp32 dot products rounded to bf16, as a bf16 nn.Linear gives), softmax in
// fp32, top-k by logit (ties to the lower expert index), weights = softmax prob of the chosen experts, renormalised
// over the k chosen when `renorm`; counts[e] += (pairs routed to e). counts must be zero before the launch.
struct RouteArgs {
  const bf16* x;
  const bf16* router;
  int T, H, E, k;
  bool renorm;
  bf16* logits;   // [T,E]
  int* topk_ids;  // [T,k], descending by logit
  float* topk_w;  // [T,k]
  int* counts;    // [E]
};
void launch_route(const RouteArgs& a, cudaStream_t s);

// (b) moe_route.cu: block-aligned permutation. Expert e owns padded rows [off[e], off[e+1]), off[e+1]-off[e] =
// counts[e] rounded up to block_m; inside an expert rows follow (token, slot) order (stable, like build_dispatch).
// sorted_token[r] = source token or -1 (padding), sorted_w[r] = routing weight (0 on padding), inv[t*k+s] = row,
// tile_expert[m] = expert of M-tile m or -1 past the last used tile. One CTA; no host synchronisation.
struct PermuteArgs {
  const int* topk_ids;
  const float* topk_w;
  const int* counts;
  int T, k, E, block_m;
  int max_rows, max_tiles;  // capacity: rows >= T*k + E*(block_m-1) rounded to block_m; tiles = rows / block_m
  int* sorted_token;
  float* sorted_w;
  int* inv;
  int* tile_expert;
};
void launch_permute(const PermuteArgs& a, cudaStream_t s);

// (d) moe_route.cu: out[t] = Σ_s y[row(t,s)] in fp32, rounded once to bf16; row = inv[t*k+s], or t*k+s when inv is
// null (decode layout). Deterministic: fixed slot order, no atomics.
void launch_combine(const bf16* y, const int* inv, int T, int k, int H, bf16* out, cudaStream_t s);

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
  int pairs;  // T·k routed rows (the sm90 launchers pick their kernel variant by it)
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
// token routed to it (pair p = t*k+s). h_dec [T*k, I] and y_dec [T*k, H] are indexed by pair.
struct DecodeArgs {
  const bf16* x;
  const bf16* gate;
  const bf16* up;
  const bf16* down;
  const int* topk_ids;
  const float* topk_w;
  const int* counts;
  int T, k, H, I, E;
  bf16* h_dec;
  bf16* y_dec;
};
void launch_decode_gate_up(const DecodeArgs& a, cudaStream_t s);
void launch_decode_down(const DecodeArgs& a, cudaStream_t s);

}  // namespace wattmoe::cuda
