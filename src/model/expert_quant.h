// Weight-only low-precision routed experts of a model (`--expert-precision bf16|fp8|int8`, RunnerOptions): every
// ParamKind::Expert tensor (gate, up, down of each routed expert; not the shared expert, router, attention or
// embeddings) is quantised per output row by ops/quant.h when a runner receives its weights (set_params), and replaced
// by its dequantised values code · scale ("fake quant"). So every runner and kernel path computes with the quantised
// model: the CPU in fp32, the GPU's bf16 kernels on bf16(code · scale), and the GPU's fused decode kernels on the
// codes themselves (gpu/: MoeLayerCuda::use_device_quantised_experts), which is where the bytes are saved.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/params.h"
#include "ops/quant.h"

namespace wattmoe {

// The codes and row scales of a model's routed experts, expert-major per MoE layer as the fused kernels read them
// (gpu/moe_fused_cuda.h): codes [moe layer][gate | up | down][E][rows·cols]; scales [moe layer][gate [E][I] |
// up [E][I] | down [E][H]]. MoE layers in model order.
struct ExpertCodes {
  ops::ExpertPrecision precision = ops::ExpertPrecision::Bf16;
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  int64_t layer_codes() const;   // codes per MoE layer: 3·E·I·H
  int64_t layer_scales() const;  // scales per MoE layer: E·(2I + H)
  int64_t E = 0, I = 0, H = 0;
};

// Where one routed-expert tensor (a ParamKind::Expert spec: an expert's gate [I, H], up [I, H] or down [H, I]) is
// read and where its codes and row scales go in ExpertCodes' layout: the one home of that layout, which the CPU
// quantiser below and the GPU's (gpu/moe_fused_cuda.cpp) both follow.
struct ExpertQuantSlot {
  const ParamSpec* spec;  // offset, shape [rows, cols] and name in the layout
  int64_t code_offset, scale_offset;
};
// Every routed-expert tensor of the model, in layout order.
std::vector<ExpertQuantSlot> expert_quant_slots(const ModelConfig& c, const ParamLayout& L);
// The ranges of `L` that hold routed-expert tensors (adjacent tensors merged).
std::vector<ParamRange> expert_param_ranges(const ParamLayout& L);

// Quantises the routed-expert tensors of `params` (host fp32, ParamLayout order) in place to code · scale; with
// `out`, also fills its codes and scales (resized). Bf16: nothing changes and `out` is left empty. Throws naming the
// tensor on a non-finite weight.
void quantise_experts(const ModelConfig& c, const ParamLayout& L, float* params, ops::ExpertPrecision p,
                      ExpertCodes* out = nullptr);

// Whether one of `ranges` overlaps a routed-expert tensor (set_param_ranges on a quantised model refuses those: the
// adapters train routers, norms and LoRA factors, never the experts themselves).
bool ranges_touch_experts(const ParamLayout& L, const std::vector<ParamRange>& ranges);

}  // namespace wattmoe
