#include "cli/moe_kernels_flag.h"

#include "core/error.h"
#include "core/log.h"

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

void check_device_flags(const std::string& moe_kernels, const std::string& precision, bool cuda) {
  WATTMOE_REQUIRE(precision == "fp32" || precision == "bf16", "--precision {}: expected fp32 or bf16", precision);
  WATTMOE_REQUIRE(cuda || precision == "fp32", "--precision bf16 needs --device cuda");
  WATTMOE_REQUIRE(moe_kernels == "auto" || moe_kernels == "fused" || moe_kernels == "host",
                  "--moe-kernels {}: expected auto, fused or host", moe_kernels);
  WATTMOE_REQUIRE(cuda || moe_kernels != "fused", "--moe-kernels fused needs --device cuda");
}

std::string fused_routing_unsupported(const RoutingArgs& a, const ModelConfig& c) {
  if (a.policy != "topk") return "--policy " + a.policy + " (the fused kernels route by plain top-k: --policy topk)";
  if (!a.mask.empty()) return "--mask (the fused kernels route over every expert)";
  if (a.k_max != 0 && a.k_max != c.top_k)
    return "--k-max " + std::to_string(a.k_max) + " (the fused kernels take the model's top-" +
           std::to_string(c.top_k) + ")";
  return "";
}

bool choose_fused_moe(const std::string& moe_kernels, const std::string& why_not) {
  if (moe_kernels == "host") {
    log_info("MoE layers: host routing (--moe-kernels host)");
    return false;
  }
  WATTMOE_REQUIRE(moe_kernels != "fused" || why_not.empty(), "--moe-kernels fused: {}", why_not);
  if (why_not.empty()) {
    log_info("MoE layers: fused kernels (--moe-kernels {})", moe_kernels);
    return true;
  }
  log_info("MoE layers: host routing (--moe-kernels auto: {})", why_not);
  return false;
}

}  // namespace wattmoe::cli
