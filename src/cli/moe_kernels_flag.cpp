#include "cli/moe_kernels_flag.h"


namespace wattmoe::cli {

void add_moe_kernels_flag(CLI::App* cmd, std::string& value) {
  cmd->add_option("--moe-kernels", value,
                  "with --device cuda, what runs the MoE layers: auto (fused where exact: --precision bf16, plain top-k "
                  "routing, no LoRA/shared expert, H and I multiples of 8), fused (error when not possible), or host "
                  "(routing on the host: every policy, one round trip per layer)")
      ->capture_default_str();
}

void add_precision_flag(CLI::App* cmd, std::string& value) {
  cmd->add_option("--precision", value, "fp32, or bf16 (with --device cuda: bf16 weights and activations)")
      ->capture_default_str();
}

}  // namespace wattmoe::cli
