// The MoE layer forward on the GPU: router -> softmax -> routing policy -> permutation -> grouped SwiGLU expert FFN
// -> weighted combine, all in our own kernels (src/ops/cuda/moe_*.cu), bf16 storage with fp32 accumulation.
//
// Shapes (HF layout, row-major, [out, in] weights): x, out [T,H]; router [E,H]; gate, up [E,I,H]; down [E,H,I].
// out[t] = Σ_{used slots s} w[t,s] · down[e_s] · (silu(gate[e_s]·x[t]) ⊙ up[e_s]·x[t]), with e_s the experts the
// routing policy selects for token t from p = softmax(router·x[t]) and w their probabilities, renormalised over the
// token's used slots when asked (moe/routing.h's route_weights).
// Routing policies (ops/moe_route_policy.h; the CPU policies of moe/policy.h are the reference): topk, cost, top_p,
// skip, budget, mask, with their knobs in a block of DEVICE memory that every forward reads, so knobs change between
// forwards or CUDA-graph replays without re-capture. Default: plain top-k with the model's k (MoeShape::top_k).
// Each token has S = slots() slots (MoeShape::max_slots, default top_k); a policy uses K <= S of them, fewer for
// some tokens (top_p, skip, budget, masks leaving fewer than K experts): unused slots are -1 at the end of the row
// and cost nothing (no permuted row, no GEMM rows, no decode work, skipped by the combine).
// Ranking: experts are ranked by the fp32 probabilities this layer computes (router_probs(): expf(l - max) / Σ over
// the bf16-rounded logits), ties to the lower expert index — not by logits (cost with λ != 0 ranks by the double
// score logit - λ·c̃_e, as the CPU does). So the selection equals the CPU policy's on the same probabilities
// exactly; against the earlier ranking by logits, plain top-k differs only at near-ties (two different bf16 logits
// whose fp32 probabilities are equal, e.g. both underflow to 0), and its weights and output bits are unchanged.
// Precision: router logits are rounded to bf16 (as a bf16 nn.Linear gives), softmax and weights are fp32, the SwiGLU
// activation h is stored in bf16, each expert's weighted output row is stored in bf16 and the used rows are summed in
// fp32 and rounded once. forward() overwrites out.
//
// This header pulls in no CUDA header, so any translation unit may include it; the definitions exist only when the
// project is configured with the CUDA backend (WATTMOE_WITH_CUDA). Pointers marked "device" are CUDA device memory.
#pragma once
#if !defined(WATTMOE_WITH_CUDA) || !WATTMOE_WITH_CUDA
#error "ops/moe_cuda.h needs the CUDA backend: configure with -DWATTMOE_CUDA=ON (or AUTO where nvcc is installed)"
#endif

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "ops/moe_route_policy.h"
#include "ops/quant.h"

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;  // the CUDA runtime's own declaration, repeated

namespace wattmoe {

struct MoeShape {
  int hidden = 0;        // H, a multiple of 8
  int intermediate = 0;  // I, a multiple of 8
  int experts = 0;       // E, 1..256
  int top_k = 0;         // k, 1..E: the default policy's K (and K of any policy block with k_max = 0)
  bool renorm = true;    // renormalise the used slots' weights to sum to 1 (Mixtral: always; OLMoE/Qwen2-MoE:
                         // norm_topk_prob)
  int max_slots = 0;     // S: slots per token, the largest K any policy may use (top_k..E); 0 = top_k. Sizes the
                         // routing rows [T,S] and the permuted-row capacity (T·S + padding)
};

struct MoeCudaOptions {
  std::string name = "layer0.moe";  // prefix of the NVTX ranges: <name>.router, .permute, .gate_up, .down, .combine
  int decode_max_tokens = 8;        // T <= this takes the weight-streaming decode kernels (at most 8)
  int block_m = 0;  // prefill M-tile: 64 (mma.sync) or 128 (wgmma, Hopper only); 0 picks by tokens per expert
  // Kernel of the 128-row tiles: 1 cp.async by the MMA warps, 2 TMA with a producer warpgroup, 3 as 2 with clusters
  // of 2 CTAs sharing each weight tile by TMA multicast, 4 the same with clusters of 4; 0 picks (1 below 4096
  // routed rows T·k, else 3).
  int sm90_kernel = 0;
  // Persistent TMA kernels (2-4): false hands the tiles out in order through an atomic counter, so CTAs that read
  // the same weight tile run at the same time and share it through L2, and skips 64-row halves of padding; true runs
  // them as before (a fixed stride of tiles per CTA, every half computed), kept for comparison
  // (moe_layer_bench --static-schedule). Same output bits either way.
  bool sm90_static_schedule = false;
  // Epilogue of the persistent TMA kernels (2-4): 1 stores bf16 straight from registers (4-byte stores while the
  // tensor cores wait), 2 stages gate_up's h tile in shared memory and writes it with asynchronous TMA stores that
  // overlap the next tile's mainloop, 3 does the same in down too; 0 picks (3, measured faster). Same output bits.
  int sm90_store = 0;
  // Called on the host right after each stage's launches with the stage's name ("router", "permute", "gate_up",
  // "down", "combine"), e.g. to record a CUDA event on the stream (moe_layer_bench --stages). Empty by default.
  std::function<void(const char* stage)> on_stage;
};

// One MoE layer on the current CUDA device. Not copyable; owns its workspace (and its weights after upload()).
class MoeLayerCuda {
 public:
  MoeLayerCuda(const MoeShape& shape, int max_tokens, const MoeCudaOptions& opt = {});
  ~MoeLayerCuda();
  MoeLayerCuda(const MoeLayerCuda&) = delete;
  MoeLayerCuda& operator=(const MoeLayerCuda&) = delete;

  // Copies host weights (bf16 bit patterns, layouts above) into device memory owned by this layer.
  void upload(const uint16_t* router, const uint16_t* gate, const uint16_t* up, const uint16_t* down);
  // Uses device weights the caller owns and keeps alive (same layouts).
  void use_device_weights(const void* router, const void* gate, const void* up, const void* down);

  // Weight-only quantised experts (ops/quant.h: fp8 e4m3 or int8 codes with one fp32 scale per weight row) for the
  // decode path: forward(T <= decode_max_tokens) streams these 1-byte codes instead of the bf16 experts (half the
  // bytes) and gives the layer with weights code · scale; the prefill path (larger T) keeps reading the bf16 experts,
  // which the caller sets to bf16(code · scale) for both paths to run the same (fake-quantised) model — so both
  // copies stay resident: 3 bytes per expert weight instead of 2. Layouts: codes as the bf16 experts (gate, up
  // [E,I,H], down [E,H,I]), scales gate_s, up_s [E,I], down_s [E,H]. Needs H % 16 == 0 and I % 16 == 0 (16 codes per
  // 16-byte load); p = Bf16 goes back to the bf16 decode kernels (the pointers are then ignored).
  // upload_* copies host arrays into memory this layer owns; use_device_* uses the caller's device arrays, kept alive.
  void upload_quantised_experts(ops::ExpertPrecision p, const uint8_t* gate, const uint8_t* up, const uint8_t* down,
                                const float* gate_s, const float* up_s, const float* down_s);
  void use_device_quantised_experts(ops::ExpertPrecision p, const void* gate, const void* up, const void* down,
                                    const float* gate_s, const float* up_s, const float* down_s);
  ops::ExpertPrecision decode_precision() const { return qprec_; }

  // x, out: device bf16 [T,H], 1 <= T <= max_tokens. Asynchronous on `stream`, no host synchronisation, so it can
  // be captured in a CUDA graph (the launch grid depends on T only, never on the routing or the policy). Reads the
  // policy block that route_policy() names when the forward runs on the device (a graph replay reads the block the
  // capture named, with whatever values it holds then).
  void forward(const void* x, void* out, int T, cudaStream_t stream);

  // Routing policy. set_route_policy validates p on the host (validate_route_policy of ops/moe_route_policy_check.h
  // with this layer's E, k and S: a NaN or out-of-range knob, K > slots(), missing or wrong costs throw
  // wattmoe::Error naming the knob), copies it asynchronously on `stream` into this layer's own device block (p may
  // be freed on return) and makes forwards read that block. Stream order makes forwards queued later on `stream`
  // (or graphs launched on it) see the new values; not callable while `stream` is capturing a graph (throws).
  void set_route_policy(const MoeRoutePolicy& p, cudaStream_t stream);
  // Makes forwards read a caller-owned device block instead (one per model layer, say; nullptr = back to the
  // layer's own block). The caller keeps it alive and valid while forwards that read it run, validates it with
  // validate_route_policy before writing it, and orders its writes before those forwards. The kernels read only what
  // memory safety needs from an invalid block: they clamp K and k_min into range and report (route_policy_faults).
  void use_route_policy(const MoeRoutePolicy* device_block);
  const MoeRoutePolicy* route_policy() const { return policy_; }  // device pointer the next forward reads
  // Fault bits (cuda::kRouteFault* of ops/cuda/moe_kernels.h: 1 policy id, 2 K, 4 k_min, 8 every expert masked,
  // 16 missing costs) of the last forward's policy block; 0 for a valid block. Synchronises the device: for tests and
  // debugging, not the decode path.
  int route_policy_faults() const;

  // The last forward's routing, device memory: logits bf16 [T,E], probabilities fp32 [T,E] (what the policies
  // rank), expert ids int32 [T,S] (the policy's slot order, -1 in unused slots at the end of each row), weights fp32
  // [T,S] (0 in unused slots), counts int32 [E] (used slots per expert). S = slots().
  const uint16_t* router_logits() const;
  const float* router_probs() const;
  const int32_t* topk_ids() const;
  const float* topk_weights() const;
  const int32_t* expert_counts() const;
  int slots() const { return slots_; }

  // Which path forward(T) takes: 0 = decode kernels, else the prefill M-tile (64 or 128; 128 needs sm_90).
  int path_for(int T) const;
  const MoeShape& shape() const { return shape_; }
  size_t workspace_bytes() const { return ws_bytes_; }

 private:
  MoeShape shape_;
  MoeCudaOptions opt_;
  int max_tokens_ = 0;
  const void *router_ = nullptr, *gate_ = nullptr, *up_ = nullptr, *down_ = nullptr;
  void* owned_weights_ = nullptr;
  // Quantised experts of the decode path (qprec_ != Bf16): codes and row scales, maybe owned (owned_quant_).
  ops::ExpertPrecision qprec_ = ops::ExpertPrecision::Bf16;
  const void *qgate_ = nullptr, *qup_ = nullptr, *qdown_ = nullptr;
  const float *sgate_ = nullptr, *sup_ = nullptr, *sdown_ = nullptr;
  void* owned_quant_ = nullptr;
  void* ws_ = nullptr;
  size_t ws_bytes_ = 0;
  // Workspace views (byte offsets into ws_).
  size_t off_logits_ = 0, off_ids_ = 0, off_w_ = 0, off_counts_ = 0, off_stok_ = 0, off_sw_ = 0, off_inv_ = 0,
         off_tiles_ = 0, off_h_ = 0, off_y_ = 0, off_xs_ = 0, off_sched_ = 0;
  // Routing policy state: probabilities [max_tokens,E], the layer's own policy block, and the budget scratch
  // (candidate keys and pair indices x2, ratios, tokens, keep flags; [max_tokens·S] each). off_counts_ covers
  // counts [E], first-pass counts [E] and the fault word, zeroed by one memset per forward.
  size_t off_probs_ = 0, off_policy_ = 0, off_ckey_ = 0, off_cp_ = 0, off_cratio_ = 0, off_ctok_ = 0, off_keep_ = 0;
  const MoeRoutePolicy* policy_ = nullptr;
  int slots_ = 0;
  int max_rows_ = 0;  // capacity for the largest M-tile (most padding)
  bool sm90_ = false;  // the device runs the wgmma kernels (compute capability 9.x)
};

}  // namespace wattmoe
