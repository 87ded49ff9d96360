// The CUDA side of `wattmoe profile --device cuda`: each layer's weights in bf16 on the GPU (uploaded from a
// checkpoint, or random on the device for --random-init), the blocks of ops/cuda/profile_blocks.h run on them
// inside NVTX ranges "layer{l}" > "layer{l}.attention" / ".router" / ".expert{e}" / ".shared", and --check-layer.
// Only in CUDA builds (CMakeLists.txt compiles blocks_cuda.cpp only then; include this only from CUDA code).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "profile/model_blocks.h"
#include "energy/cost_analytic.h"
#include "energy/meter.h"
#include "energy/profiler.h"
#include "io/json.h"
#include "model/config.h"
#include "ops/cuda/profile_blocks.h"

namespace wattmoe {

struct CudaLayerWeights {
  DeviceBuffer router;          // [E,H]
  DeviceBuffer gate, up, down;  // [E,I,H], [E,I,H], [E,H,I]
  DeviceBuffer wq, wk, wv, wo;  // [nh·hd,H], [nkv·hd,H] x2, [H,nh·hd]
  DeviceBuffer sgate, sup, sdown;  // shared expert (empty without one)
};

class CudaBlockExecutor : public BlockExecutor {
 public:
  // params: a host fp32 buffer in ParamLayout::build(c) order, converted to bf16; null: random weights generated on
  // the device from `seed` (std 1/√fan_in). Activations x [max_tokens, H] are random (std 1) either way.
  // graph_calls > 1: each run replays a CUDA graph of that many calls of the block (captured on first use per token
  // count), so small blocks are measured without host launch gaps; 1: plain launches.
  CudaBlockExecutor(const ModelConfig& c, const float* params, uint64_t seed, int max_tokens, int graph_calls);
  ~CudaBlockExecutor() override;
  void attention(int layer, int tokens) override;
  void router(int layer, int tokens) override;
  void expert(int layer, int expert, int tokens) override;
  void shared(int layer, int tokens) override;
  int calls_per_run() const override { return graph_calls_; }
  cudaStream_t stream() const { return stream_.get(); }

  const CudaLayerWeights& weights(int layer) const { return layers_[size_t(layer)]; }
  const void* x() const { return x_.get(); }
  void* out() { return out_.get(); }
  int max_tokens() const { return max_tokens_; }

 private:
  // Runs `work` on the stream: directly, or through the graph cached under `key` (captured on first use).
  void dispatch(const std::string& key, const std::function<void(cudaStream_t)>& work);

  ModelConfig c_;
  int max_tokens_, graph_calls_;
  CudaStream stream_;
  std::map<std::string, std::unique_ptr<CudaGraphRun>> graphs_;
  std::vector<CudaLayerWeights> layers_;
  std::vector<std::string> layer_names_;
  DeviceBuffer x_, out_;
  std::unique_ptr<ExpertBlockCuda> expert_, shared_;
  std::unique_ptr<RouterBlockCuda> router_;
  std::unique_ptr<AttentionBlockCuda> attention_;
};

// --check-layer: the full MoE layer of layer 0 (MoeLayerCuda, all E experts, top-k; CUDA graphs like the blocks)
// at `opt.token_counts`, windows of at least 1 s, at least 3 repeats; measured J per call against the calibrated
// analytic model (`hw`: Σ over the experts the routing activated, from MoeLayerCuda::expert_counts, of the roofline
// energy at their counts) plus the router block as profiled in `profile`, and against the profiled table alone;
// and, for the longest window, the energy counter against integrated instant power.
Json check_layer_cuda(CudaBlockExecutor& ex, const ModelConfig& c, PowerSensor& sensor, EnergyMeter& meter,
                      ProfileOptions opt, const HardwareCoeffs& hw, const ProfileResult& profile);

}  // namespace wattmoe
