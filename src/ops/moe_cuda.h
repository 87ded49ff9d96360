// The MoE layer forward on the GPU: router -> softmax -> top-k -> permutation -> grouped SwiGLU expert FFN ->
// weighted combine, all in our own kernels (src/ops/cuda/moe_*.cu), bf16 storage with fp32 accumulation.
//
// Shapes (HF layout, row-major, [out, in] weights): x, out [T,H]; router [E,H]; gate, up [E,I,H]; down [E,H,I].
// out[t] = Σ_s w[t,s] · down[e_s] · (silu(gate[e_s]·x[t]) ⊙ up[e_s]·x[t]), with e_s the top-k experts of
// softmax(router·x[t]) (ties to the lower index) and w their probabilities, renormalised over the k when asked.
// Precision: router logits are rounded to bf16 (as a bf16 nn.Linear gives), softmax and weights are fp32, the SwiGLU
// activation h is stored in bf16, each expert's weighted output row is stored in bf16 and the k rows are summed in
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

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;  // the CUDA runtime's own declaration, repeated

namespace wattmoe {

struct MoeShape {
  int hidden = 0;        // H, a multiple of 8
  int intermediate = 0;  // I, a multiple of 8
  int experts = 0;       // E, 1..256
  int top_k = 0;         // k, 1..E
  bool renorm = true;    // renormalise the k weights to sum to 1 (Mixtral: always; OLMoE/Qwen2-MoE: norm_topk_prob)
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

  // x, out: device bf16 [T,H], 1 <= T <= max_tokens. Asynchronous on `stream`, no host synchronisation, so it can
  // be captured in a CUDA graph (the launch grid depends on T only, never on the routing).
  void forward(const void* x, void* out, int T, cudaStream_t stream);

  // The last forward's routing, device memory: logits bf16 [T,E], expert ids int32 [T,k] (descending logit),
  // weights fp32 [T,k], counts int32 [E].
  const uint16_t* router_logits() const;
  const int32_t* topk_ids() const;
  const float* topk_weights() const;
  const int32_t* expert_counts() const;

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
  void* ws_ = nullptr;
  size_t ws_bytes_ = 0;
  // Workspace views (byte offsets into ws_).
  size_t off_logits_ = 0, off_ids_ = 0, off_w_ = 0, off_counts_ = 0, off_stok_ = 0, off_sw_ = 0, off_inv_ = 0,
         off_tiles_ = 0, off_h_ = 0, off_y_ = 0, off_xs_ = 0, off_sched_ = 0;
  int max_rows_ = 0;  // capacity for the largest M-tile (most padding)
  bool sm90_ = false;  // the device runs the wgmma kernels (compute capability 9.x)
};

}  // namespace wattmoe
