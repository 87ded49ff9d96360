#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/error.h"

namespace wattmoe {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Mixtral: return "mixtral";
    case Arch::Olmoe: return "olmoe";
    case Arch::Qwen2Moe: return "qwen2_moe";
  }
  return "?";
}

bool ModelConfig::is_moe_layer(int layer) const {
  if (arch != Arch::Qwen2Moe) return true;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

namespace {

// The parameter count in any arithmetic type: int64 for num_parameters(), long double for validate()'s bound (which
// must not overflow on the way to saying the model is too large).
template <class N>
N count_parameters(const ModelConfig& c) {
  const N H = N(c.hidden_size), q = N(c.num_heads) * N(c.head_dim), kv = N(c.num_kv_heads) * N(c.head_dim);
  N n = N(c.vocab_size) * H * N(c.tie_word_embeddings ? 1 : 2) + H;
  for (int l = 0; l < c.num_layers; ++l) {
    n += N(2) * H + H * (q + N(2) * kv) + q * H;
    if (c.qkv_bias) n += q + N(2) * kv;
    if (c.qk_norm) n += q + kv;
    if (c.is_moe_layer(l)) {
      const N E = N(c.num_experts), I = N(c.moe_intermediate_size);
      n += E * H + E * N(3) * H * I;
      n += E * N(3) * N(c.lora_rank) * (H + I);  // A [r, in] + B [out, r] per matrix
      if (c.shared_expert_intermediate_size > 0) n += N(3) * H * N(c.shared_expert_intermediate_size) + H;
    } else {
      n += N(3) * H * N(c.intermediate_size);
    }
  }
  return n;
}

}  // namespace

int64_t ModelConfig::num_parameters() const { return count_parameters<int64_t>(*this); }

int64_t ModelConfig::active_parameters() const {
  const int64_t H = hidden_size;
  int64_t inactive = 0;
  for (int l = 0; l < num_layers; ++l)
    if (is_moe_layer(l))
      inactive += int64_t(num_experts - top_k) * 3 *
                  (H * moe_intermediate_size + int64_t(lora_rank) * (H + moe_intermediate_size));
  return num_parameters() - inactive;
}

void ModelConfig::validate(const std::string& what) const {
  auto pos = [&](const char* name, int64_t v) {
    WATTMOE_REQUIRE(v > 0, "{}: {} must be positive, got {}", what, name, v);
  };
  pos("vocab_size", vocab_size);
  pos("hidden_size", hidden_size);
  pos("num_hidden_layers", num_layers);
  pos("num_attention_heads", num_heads);
  pos("num_key_value_heads", num_kv_heads);
  pos("head_dim", head_dim);
  WATTMOE_REQUIRE(head_dim % 2 == 0, "{}: head_dim must be even for RoPE, got {}", what, head_dim);
  WATTMOE_REQUIRE(num_heads % num_kv_heads == 0, "{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                  what, num_heads, num_kv_heads);
  pos("num_experts", num_experts);
  pos("expert intermediate size", moe_intermediate_size);
  WATTMOE_REQUIRE(top_k >= 1 && top_k <= num_experts, "{}: num_experts_per_tok ({}) must be in [1, num_experts={}]", what,
                  top_k, num_experts);
  WATTMOE_REQUIRE(rms_norm_eps > 0, "{}: rms_norm_eps must be positive", what);
  WATTMOE_REQUIRE(rope_theta > 0, "{}: rope_theta must be positive", what);
  WATTMOE_REQUIRE(decoder_sparse_step >= 1, "{}: decoder_sparse_step must be >= 1", what);
  for (int l : mlp_only_layers)
    WATTMOE_REQUIRE(l >= 0 && l < num_layers, "{}: mlp_only_layers names layer {} of {}", what, l, num_layers);
  for (int l = 0; l < num_layers; ++l)
    if (!is_moe_layer(l)) pos("intermediate_size (dense layers)", intermediate_size);
  const int max_rank = std::min(hidden_size, moe_intermediate_size);
  WATTMOE_REQUIRE(lora_rank >= 0 && lora_rank <= max_rank,
                  "{}: wattmoe_lora_rank must be in [0, {}] (the smaller dimension of an expert matrix), got {}", what,
                  max_rank, lora_rank);
  WATTMOE_REQUIRE(std::isfinite(lora_scale), "{}: wattmoe_lora_scale must be a finite number, got {}", what, lora_scale);
  // Checked before anything is allocated or laid out (int64 offsets): at most 2^40 parameters (4 TB in fp32).
  const long double n = count_parameters<long double>(*this);
  WATTMOE_REQUIRE(n <= kMaxParameters, "{}: these sizes give {:.3g} parameters, more than the engine's limit of {:.3g}",
                  what, double(n), double(kMaxParameters));
}

namespace {

// A JSON value's type in words, with the value when short ("a boolean (true)", "a float (4.9)").
std::string json_type_words(const Json& v) {
  const char* t = v.is_boolean()          ? "a boolean"
                  : v.is_number_integer() ? "an integer"
                  : v.is_number_float()   ? "a float"
                  : v.is_string()         ? "a string"
                  : v.is_array()          ? "an array"
                  : v.is_object()         ? "an object"
                                          : "null";
  std::string d = v.dump();
  if (d.size() > 40) d = d.substr(0, 40) + "...";
  return v.is_array() || v.is_object() ? t : fmt::format("{} ({})", t, d);
}

// Exact types, never converted (nlohmann's get<int>() takes true as 1, 4.9 as 4 and 2^32 + 256 as 256): an int
// field is a JSON integer within int's range, a double any finite number (not a boolean), a bool true or false.
template <class V>
V typed(const Json& v, const char* key, const std::string& what) {
  if constexpr (std::is_same_v<V, int>) {
    WATTMOE_REQUIRE(v.is_number_integer(), "{}: field \"{}\" must be an integer, got {}", what, key, json_type_words(v));
    const bool neg = v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0;
    const bool fits = neg ? v.get<int64_t>() >= std::numeric_limits<int>::min()
                          : v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max());
    WATTMOE_REQUIRE(fits, "{}: field \"{}\" is out of range: {} (expected {} to {})", what, key, v.dump(),
                    std::numeric_limits<int>::min(), std::numeric_limits<int>::max());
    return int(v.get<int64_t>());
  } else if constexpr (std::is_same_v<V, double>) {
    WATTMOE_REQUIRE(v.is_number(), "{}: field \"{}\" must be a number, got {}", what, key, json_type_words(v));
    const double d = v.get<double>();
    WATTMOE_REQUIRE(std::isfinite(d), "{}: field \"{}\" must be a finite number, got {}", what, key, d);
    return d;
  } else if constexpr (std::is_same_v<V, bool>) {
    WATTMOE_REQUIRE(v.is_boolean(), "{}: field \"{}\" must be true or false, got {}", what, key, json_type_words(v));
    return v.get<bool>();
  } else if constexpr (std::is_same_v<V, std::string>) {
    WATTMOE_REQUIRE(v.is_string(), "{}: field \"{}\" must be a string, got {}", what, key, json_type_words(v));
    return v.get<std::string>();
  } else {
    static_assert(std::is_same_v<V, std::vector<int>>);
    WATTMOE_REQUIRE(v.is_array(), "{}: field \"{}\" must be an array of integers, got {}", what, key,
                    json_type_words(v));
    std::vector<int> r;
    for (const Json& e : v) r.push_back(typed<int>(e, key, what));
    return r;
  }
}

template <class V>
V get_or(const Json& j, const char* key, V dflt, const std::string& what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return typed<V>(*it, key, what);
}

template <class V>
V get_req(const Json& j, const char* key, const std::string& what) {
  WATTMOE_REQUIRE(j.contains(key) && !j[key].is_null(), "{}: missing required field \"{}\"", what, key);
  return get_or<V>(j, key, V{}, what);
}

}  // namespace

ModelConfig parse_model_config(const Json& j, const std::string& what) {
  WATTMOE_REQUIRE(j.is_object(), "{}: config must be a JSON object", what);
  ModelConfig c;
  std::string type = get_or<std::string>(j, "model_type", "", what);
  if (type == "mixtral") {
    c.arch = Arch::Mixtral;
  } else if (type == "olmoe") {
    c.arch = Arch::Olmoe;
  } else if (type == "qwen2_moe") {
    c.arch = Arch::Qwen2Moe;
  } else {
    fail("{}: unsupported model_type \"{}\" (supported: mixtral, olmoe, qwen2_moe)", what, type);
  }
  std::string act = get_or<std::string>(j, "hidden_act", "silu", what);
  WATTMOE_REQUIRE(act == "silu", "{}: hidden_act \"{}\" is not supported (only silu)", what, act);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    std::string rt = get_or<std::string>(j["rope_scaling"], "rope_type", get_or<std::string>(j["rope_scaling"], "type", "default", what), what);
    WATTMOE_REQUIRE(rt == "default", "{}: rope_scaling type \"{}\" is not supported", what, rt);
  }

  c.vocab_size = get_req<int>(j, "vocab_size", what);
  c.hidden_size = get_req<int>(j, "hidden_size", what);
  c.num_layers = get_req<int>(j, "num_hidden_layers", what);
  c.num_heads = get_req<int>(j, "num_attention_heads", what);
  c.num_kv_heads = get_or<int>(j, "num_key_value_heads", c.num_heads, what);
  // Only Mixtral reads head_dim from the config; OLMoE and Qwen2-MoE always use hidden_size / heads (as HF does).
  c.head_dim = c.num_heads > 0 ? c.hidden_size / c.num_heads : 0;
  if (type == "mixtral") c.head_dim = get_or<int>(j, "head_dim", c.head_dim, what);
  c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6, what);
  c.rope_theta = get_or<double>(j, "rope_theta", 1e4, what);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const Json& rp = j["rope_parameters"];
    c.rope_theta = get_or<double>(rp, "rope_theta", c.rope_theta, what);
    std::string rt = get_or<std::string>(rp, "rope_type", "default", what);
    WATTMOE_REQUIRE(rt == "default", "{}: rope_parameters.rope_type \"{}\" is not supported", what, rt);
  }
  c.max_position_embeddings = get_or<int>(j, "max_position_embeddings", 4096, what);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, what);
  c.router_aux_loss_coef = get_or<double>(j, "router_aux_loss_coef", 0.01, what);
  c.router_z_loss_coef = get_or<double>(j, "router_z_loss_coef", 0.0, what);
  c.torch_dtype = get_or<std::string>(j, "torch_dtype", get_or<std::string>(j, "dtype", "float32", what), what);
  c.top_k = get_req<int>(j, "num_experts_per_tok", what);

  switch (c.arch) {
    case Arch::Mixtral:
      c.num_experts = get_req<int>(j, "num_local_experts", what);
      c.intermediate_size = get_req<int>(j, "intermediate_size", what);
      c.moe_intermediate_size = c.intermediate_size;
      c.norm_topk_prob = true;  // Mixtral always renormalises its top-k weights
      break;
    case Arch::Olmoe:
      c.num_experts = get_req<int>(j, "num_experts", what);
      c.intermediate_size = get_req<int>(j, "intermediate_size", what);
      c.moe_intermediate_size = c.intermediate_size;
      c.norm_topk_prob = get_or<bool>(j, "norm_topk_prob", false, what);
      c.qk_norm = true;
      c.clip_qkv = get_or<double>(j, "clip_qkv", 0.0, what);
      WATTMOE_REQUIRE(c.clip_qkv >= 0, "{}: clip_qkv must be non-negative", what);
      break;
    case Arch::Qwen2Moe:
      c.num_experts = get_req<int>(j, "num_experts", what);
      c.intermediate_size = get_or<int>(j, "intermediate_size", 0, what);
      c.moe_intermediate_size = get_req<int>(j, "moe_intermediate_size", what);
      c.shared_expert_intermediate_size = get_or<int>(j, "shared_expert_intermediate_size", 0, what);
      c.norm_topk_prob = get_or<bool>(j, "norm_topk_prob", false, what);
      c.qkv_bias = get_or<bool>(j, "qkv_bias", true, what);
      c.decoder_sparse_step = get_or<int>(j, "decoder_sparse_step", 1, what);
      c.mlp_only_layers = get_or<std::vector<int>>(j, "mlp_only_layers", {}, what);
      WATTMOE_REQUIRE(!get_or<bool>(j, "use_sliding_window", false, what),
                      "{}: use_sliding_window=true is not supported", what);
      break;
  }
  // Engine-only LoRA adapters on the routed experts (absent in HF configs).
  c.lora_rank = get_or<int>(j, "wattmoe_lora_rank", 0, what);
  c.lora_scale = float(get_or<double>(j, "wattmoe_lora_scale", 1.0, what));
  c.validate(what);
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return parse_model_config(read_json_file(path), path);
}

Json model_config_to_json(const ModelConfig& c) {
  Json j;
  j["model_type"] = arch_name(c.arch);
  j["architectures"] = {c.arch == Arch::Mixtral ? "MixtralForCausalLM"
                        : c.arch == Arch::Olmoe ? "OlmoeForCausalLM"
                                                : "Qwen2MoeForCausalLM"};
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["num_experts_per_tok"] = c.top_k;
  j["router_aux_loss_coef"] = c.router_aux_loss_coef;
  j["torch_dtype"] = c.torch_dtype;
  if (c.router_z_loss_coef != 0) j["router_z_loss_coef"] = c.router_z_loss_coef;
  switch (c.arch) {
    case Arch::Mixtral:
      j["num_local_experts"] = c.num_experts;
      j["intermediate_size"] = c.moe_intermediate_size;
      break;
    case Arch::Olmoe:
      j["num_experts"] = c.num_experts;
      j["intermediate_size"] = c.moe_intermediate_size;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["clip_qkv"] = c.clip_qkv > 0 ? Json(c.clip_qkv) : Json(nullptr);
      break;
    case Arch::Qwen2Moe:
      j["num_experts"] = c.num_experts;
      j["intermediate_size"] = c.intermediate_size;
      j["moe_intermediate_size"] = c.moe_intermediate_size;
      j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
      j["norm_topk_prob"] = c.norm_topk_prob;
      j["decoder_sparse_step"] = c.decoder_sparse_step;
      j["mlp_only_layers"] = c.mlp_only_layers;
      j["use_sliding_window"] = false;
      break;
  }
  if (c.lora_rank > 0) {
    j["wattmoe_lora_rank"] = c.lora_rank;
    j["wattmoe_lora_scale"] = double(c.lora_scale);
  }
  return j;
}

}  // namespace wattmoe
