// --moe-kernels and --precision of the commands that run the model with --device cuda (eval, generate, run):
// which code runs the MoE layers of a GPU forward, and in which precision the GPU model computes (checked and applied by
// model/runner.h: check_runner_options, choose_moe_kernels).
//   --moe-kernels auto (default): the fused MoE kernels (ops/moe_cuda.h, device-side routing, no host round trip per
//       layer) wherever they compute the layer exactly as specified — a bf16 model (--precision bf16) without LoRA
//       adapters or a shared expert, H and I multiples of 8, ≤ 256 experts, and the plain top-k routing (--policy topk,
//       no --mask, --k-max 0 or the model's k, no controller budget) — else the host-routing path (logged, with why).
//   --moe-kernels fused: the fused kernels, or an error that says why they cannot run this.
//   --moe-kernels host: routing on the host (every policy; routing bit-identical to the CPU model's at equal router
//       probabilities; one synchronising round trip per MoE layer).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace wattmoe::cli {

void add_moe_kernels_flag(CLI::App* cmd, std::string& value);
void add_precision_flag(CLI::App* cmd, std::string& value);

}  // namespace wattmoe::cli
