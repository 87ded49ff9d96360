// ModelConfig: one struct for every supported MoE architecture; variants are fields, not subclasses.
// Parsed from an HF config.json (and written back in the same form for our own checkpoints).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace wattmoe {

enum class Arch { Mixtral, Olmoe, Qwen2Moe };

struct ModelConfig {
  Arch arch = Arch::Mixtral;
  int vocab_size = 256;
  int hidden_size = 128;
  int num_layers = 4;
  int num_heads = 4;
  int num_kv_heads = 2;
  int head_dim = 32;               // config.head_dim, else hidden_size / num_heads
  int intermediate_size = 256;     // dense MLP width (Qwen2-MoE dense layers); Mixtral's expert width
  int moe_intermediate_size = 256; // expert FFN width
  int num_experts = 8;
  int top_k = 2;
  bool norm_topk_prob = true;      // renormalise the top-k weights to sum to 1 (always true for Mixtral)
  double rms_norm_eps = 1e-5;
  double rope_theta = 1e4;
  int max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  // OLMoE
  bool qk_norm = false;            // RMSNorm over the whole q and k projections before the head split
  double clip_qkv = 0;             // > 0: clamp q, k, v to [-clip, clip]
  // Qwen2-MoE
  bool qkv_bias = false;
  int shared_expert_intermediate_size = 0;  // > 0: a shared expert with a sigmoid gate
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;
  // Training-time auxiliary losses (also read by our trainer).
  double router_aux_loss_coef = 0.01;
  double router_z_loss_coef = 0.0;
  std::string torch_dtype = "float32";
  // Engine-only: LoRA adapters on every routed expert's gate/up/down (model/lora.h). lora_rank 0 = none.
  // Written to config.json as wattmoe_lora_rank / wattmoe_lora_scale only when lora_rank > 0.
  int lora_rank = 0;
  float lora_scale = 1.f;          // LoRA output multiplier (alpha / r): y = x·Wᵀ + lora_scale·(x·Aᵀ)·Bᵀ

  static constexpr int64_t kMaxParameters = int64_t(1) << 40;  // validate()'s bound (4 TB of fp32 weights)

  bool is_moe_layer(int layer) const;
  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  int64_t num_parameters() const;         // all weights
  int64_t active_parameters() const;      // weights used per token (top_k experts of each MoE layer)
  void validate(const std::string& what) const;  // Error naming `what` on inconsistent fields
};

const char* arch_name(Arch a);            // "mixtral", "olmoe", "qwen2_moe" (HF model_type)
ModelConfig parse_model_config(const Json& j, const std::string& what);
ModelConfig load_model_config(const std::string& dir);  // DIR/config.json
Json model_config_to_json(const ModelConfig& c);

}  // namespace wattmoe
