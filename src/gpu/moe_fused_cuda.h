// Internal to gpu/*_cuda.cpp: the fused MoE path of TransformerCudaT<bf16> (gpu/transformer_cuda.h, "Fused MoE
// kernels"): the bf16 weight copy's expert-major layout and the state one model keeps for
// the path — one MoeLayerCuda for all MoE layers (they share a shape; its weights and its routing-policy block are
// re-pointed per layer), the policy blocks of every MoE layer in device memory, every MoE layer's routing of the last
// forward gathered on the device (ids, weights, counts, probabilities, logits: what the host and backward read) with
// host copies of ids, weights and counts, and the LoRA-merged expert weights when the model has adapters.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "ops/cuda/context.h"
#include "ops/moe_cuda.h"
#include "ops/moe_route_policy.h"

namespace wattmoe::gpu {

// Offset of each tensor (ParamLayout::specs() order) in the bf16 weight copy, and that copy's size (*total): the
// layout's order, each tensor starting at a multiple of 8 elements (16 bytes, the fused kernels' vector loads), except
// that the routed-expert tensors of each MoE layer are stored expert-major where they stand — gates [E, I, H], then
// ups [E, I, H], then downs [E, H, I], then the layer's LoRA factors in layout order — so MoeLayerCuda reads them in
// place. Padding (≤ 7 elements per tensor; none when every size is a multiple of 8) stays zero.
std::vector<int64_t> expert_major_offsets(const ModelConfig& c, const ParamLayout& L, int64_t* total);

struct FusedMoeState {
  explicit FusedMoeState(const ModelConfig& c);
  ~FusedMoeState();
  FusedMoeState(const FusedMoeState&) = delete;
  FusedMoeState& operator=(const FusedMoeState&) = delete;

  // Before a forward of N tokens: a layer with room for N tokens of `slots` slots each, the policy blocks uploaded
  // when they changed, and routing buffers large enough (allocating waits for the stream first).
  void prepare(cuda::Context& ctx, int64_t N);
  // The routing policy of every model layer (validated here against E, k and the slots the blocks ask for); the
  // next forward uploads them. Slots grow to the largest K asked (never below the model's k).
  void set_policies(const std::vector<MoeRoutePolicy>& per_model_layer);

  MoeShape shape;                           // shape.max_slots: S, slots per token of the layer
  std::unique_ptr<MoeLayerCuda> layer;
  int max_tokens = 0;                       // the layer's capacity
  std::vector<int> moe_index;               // model layer → its index among the MoE layers, −1 for dense layers
  int moe_layers = 0;
  int64_t tokens = 0;                       // N of the last fused forward
  int slots() const { return shape.max_slots; }
  // The routing policy blocks, one per MoE layer (host copy and device array; the host copy is uploaded when dirty).
  std::vector<MoeRoutePolicy> policies;
  cuda::DeviceBuffer<MoeRoutePolicy> device_policies;
  bool policies_dirty = true;
  // Every MoE layer's routing of the last forward, device: ids [ml, N, S] (−1 unused), weights [ml, N, S], counts
  // [ml, E], probabilities [ml, N, E] fp32, router logits [ml, N, E] bf16. Host copies of ids, weights and counts
  // arrive in one copy queued at the end of the forward.
  cuda::DeviceBuffer<int32_t> ids, counts;
  cuda::DeviceBuffer<float> weights, probs;
  cuda::DeviceBuffer<cuda::bf16> logits;
  cuda::PinnedBuffer<int32_t> host_ids, host_counts;
  cuda::PinnedBuffer<float> host_weights;
  cudaEvent_t copied = nullptr;             // recorded after the copies to the host
  bool pending = false;                     // host routing not yet filled from the last forward's copy
  bool router_on_host = false;              // host_[l].probs/logits hold the last forward's (router_views)
  // LoRA: each MoE layer's experts with their adapters merged, bf16(W + scale·B·A), expert-major as the weight copy
  // ([ml][gate | up | down][E][I·H]); recomputed before a fused forward when the weights changed since (stale).
  cuda::DeviceBuffer<cuda::bf16> merged;
  bool merged_stale = true;
  // Each MoE layer's experts as the fused forward runs them with adapters: gate, up and down in `merged`, the LoRA
  // factors those of the bf16 weight copy (backward's recomputation reads these; rebuilt with `merged`).
  std::vector<std::vector<FfnView<cuda::bf16>>> merged_experts;
  // Weight-only quantised experts for the decode path (TransformerCudaT::quantise_experts; model/expert_quant.h's
  // layout): codes [ml][gate | up | down][E][I·H], scales [ml][E·(2I + H)]. qprec Bf16: none.
  ops::ExpertPrecision qprec = ops::ExpertPrecision::Bf16;
  cuda::DeviceBuffer<uint8_t> qcodes;
  cuda::DeviceBuffer<float> qscales;
};

}  // namespace wattmoe::gpu
