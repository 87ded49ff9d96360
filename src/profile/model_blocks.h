// The model side of `wattmoe profile`: which blocks a model has, what one call of each costs in FLOPs and bytes,
// and the interface the CPU and CUDA executors implement. energy/ knows no model; this is where the two meet.
//
// Blocks per MoE layer l, in profiling order: layer{l}.attention, layer{l}.router, layer{l}.expert{e} for
// e = 0..E-1, and layer{l}.shared when the model has a shared expert (Qwen2-MoE).
// Work of one call at T tokens (wb, ab: bytes per weight and per activation; H hidden, I expert width, E experts,
// nh, nkv heads of hd):
//   expert     flops 6·H·I·T, bytes 3·H·I·wb + (2H + 2I)·ab·T   (the analytic cost model's own formulas)
//   router     flops 2·H·E·T, bytes E·H·wb + (H + E)·ab·T
//   attention  flops 2·T·H·(2·nh·hd + 2·nkv·hd) + 2·nh·hd·T·(T+1)   (projections; causal q·kᵀ and P·v)
//              bytes H·(2·nh·hd + 2·nkv·hd)·wb + T·(2H + 2·nh·hd + 2·nkv·hd)·ab + nh·T²·12 (fp32 scores and bf16
//              probabilities, each written and read once)
//   shared     as an expert of the shared width
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "energy/cost_analytic.h"
#include "energy/profiler.h"
#include "energy/sim_gpu.h"
#include "model/config.h"

namespace wattmoe {

struct Precision {
  double weight_bytes = 2, act_bytes = 2;  // bf16 on CUDA; fp32 (4, 4) on the CPU
};

ExpertShape expert_shape(const ModelConfig& c, Precision p, bool shared = false);
Work router_work(const ModelConfig& c, Precision p, int tokens);
Work attention_work(const ModelConfig& c, Precision p, int tokens);

// Runs one call of a block on a real device (the inputs are the executor's own fixed random activations).
class BlockExecutor {
 public:
  virtual ~BlockExecutor() = default;
  virtual void attention(int layer, int tokens) = 0;
  virtual void router(int layer, int tokens) = 0;
  virtual void expert(int layer, int expert, int tokens) = 0;
  virtual void shared(int layer, int tokens) = 0;
  virtual int calls_per_run() const { return 1; }  // block calls each of the above makes (CUDA graphs: several)
};

// Error naming the layer when a layer is dense (no experts): only MoE layers can go into a cost table.
void require_moe_layers(const ModelConfig& c, const std::string& what);

// Every block of the model. `exec` may be null when the blocks only feed the simulated GPU (work only).
std::vector<ProfileBlock> model_blocks(const ModelConfig& c, Precision p, BlockExecutor* exec);

}  // namespace wattmoe
