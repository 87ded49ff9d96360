// Internal to gpu/*_cuda.cpp: the fused MoE path of TransformerCudaT<bf16> (gpu/transformer_cuda.h, "Fused MoE
// kernels"): the bf16 weight copy's expert-major layout, a page-locked host array, and the state one model keeps for
// the path — one MoeLayerCuda for all MoE layers (they share a shape; its weights are re-pointed per layer), every
// MoE layer's expert ids and counts of the last forward gathered on the device, and their host copies.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "ops/cuda/context.h"
#include "ops/moe_cuda.h"

namespace wattmoe::gpu {

// Offset of each tensor (ParamLayout::specs() order) in the bf16 weight copy, and that copy's size (*total): the
// layout's order, each tensor starting at a multiple of 8 elements (16 bytes, the fused kernels' vector loads), except
// that the routed-expert tensors of each MoE layer are stored expert-major where they stand — gates [E, I, H], then
// ups [E, I, H], then downs [E, H, I], then the layer's LoRA factors in layout order — so MoeLayerCuda reads them in
// place. Padding (≤ 7 elements per tensor; none when every size is a multiple of 8) stays zero.
std::vector<int64_t> expert_major_offsets(const ModelConfig& c, const ParamLayout& L, int64_t* total);

// Page-locked host array (cudaMallocHost), so that a device-to-host copy into it does not block the host.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  // Reallocates only when growing; contents are not kept. The caller makes sure no copy into it is in flight.
  void resize(size_t n) {
    if (n > cap_) {
      release();
      WATTMOE_CUDA_CALL(cudaMallocHost(reinterpret_cast<void**>(&p_), n * sizeof(T)));
      cap_ = n;
    }
    n_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  void release() {
    if (p_) cudaFreeHost(p_);
    p_ = nullptr, n_ = cap_ = 0;
  }
  T* p_ = nullptr;
  size_t n_ = 0, cap_ = 0;
};

struct FusedMoeState {
  explicit FusedMoeState(const ModelConfig& c);
  ~FusedMoeState();
  FusedMoeState(const FusedMoeState&) = delete;
  FusedMoeState& operator=(const FusedMoeState&) = delete;

  // Before a forward of N tokens: a layer and buffers large enough (allocating waits for the stream first).
  void prepare(cuda::Context& ctx, int64_t N);

  MoeShape shape;
  std::unique_ptr<MoeLayerCuda> layer;
  int max_tokens = 0;                       // the layer's capacity
  std::vector<int> moe_index;               // model layer → its index among the MoE layers, −1 for dense layers
  int moe_layers = 0;
  int64_t tokens = 0;                       // N of the last fused forward
  cuda::DeviceBuffer<int32_t> ids, counts;  // [moe_layers, N, k] expert ids (descending logit), [moe_layers, E]
  PinnedBuffer<int32_t> host_ids, host_counts;
  cudaEvent_t copied = nullptr;             // recorded after the copies to the host
  bool pending = false;                     // host routing not yet filled from the last forward's copy
};

}  // namespace wattmoe::gpu
