#include "model/params.h"

#include "core/error.h"

namespace wattmoe {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

std::string expert_name(const ModelConfig& c, int layer, int expert, const char* which) {
  const std::string w = which;
  if (c.arch == Arch::Mixtral) {
    const char* m = w == "gate" ? "w1" : w == "up" ? "w3" : "w2";
    return layer_prefix(layer) + "block_sparse_moe.experts." + std::to_string(expert) + "." + m + ".weight";
  }
  return layer_prefix(layer) + "mlp.experts." + std::to_string(expert) + "." + w + "_proj.weight";
}

void ParamLayout::add(std::string name, Shape shape, ParamKind kind, int layer, int expert) {
  ParamSpec s;
  s.numel = shape_numel(shape);
  s.name = std::move(name), s.shape = std::move(shape), s.kind = kind, s.layer = layer, s.expert = expert;
  s.offset = total_;
  total_ += s.numel;
  index_[s.name] = specs_.size();
  specs_.push_back(std::move(s));
}

const ParamSpec* ParamLayout::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &specs_[it->second];
}

ParamLayout ParamLayout::build(const ModelConfig& c) {
  ParamLayout L;
  const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size;
  L.add("model.embed_tokens.weight", {c.vocab_size, H}, ParamKind::Embedding);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    L.add(p + "input_layernorm.weight", {H}, ParamKind::Norm, l);
    L.add(p + "self_attn.q_proj.weight", {c.q_dim(), H}, ParamKind::Attention, l);
    L.add(p + "self_attn.k_proj.weight", {c.kv_dim(), H}, ParamKind::Attention, l);
    L.add(p + "self_attn.v_proj.weight", {c.kv_dim(), H}, ParamKind::Attention, l);
    if (c.qkv_bias) {
      L.add(p + "self_attn.q_proj.bias", {c.q_dim()}, ParamKind::Bias, l);
      L.add(p + "self_attn.k_proj.bias", {c.kv_dim()}, ParamKind::Bias, l);
      L.add(p + "self_attn.v_proj.bias", {c.kv_dim()}, ParamKind::Bias, l);
    }
    L.add(p + "self_attn.o_proj.weight", {H, c.q_dim()}, ParamKind::Attention, l);
    if (c.qk_norm) {
      L.add(p + "self_attn.q_norm.weight", {c.q_dim()}, ParamKind::Norm, l);
      L.add(p + "self_attn.k_norm.weight", {c.kv_dim()}, ParamKind::Norm, l);
    }
    L.add(p + "post_attention_layernorm.weight", {H}, ParamKind::Norm, l);
    if (c.is_moe_layer(l)) {
      const std::string moe = c.arch == Arch::Mixtral ? p + "block_sparse_moe." : p + "mlp.";
      L.add(moe + "gate.weight", {E, H}, ParamKind::Router, l);
      for (int e = 0; e < E; ++e) {
        L.add(expert_name(c, l, e, "gate"), {I, H}, ParamKind::Expert, l, e);
        L.add(expert_name(c, l, e, "up"), {I, H}, ParamKind::Expert, l, e);
        L.add(expert_name(c, l, e, "down"), {H, I}, ParamKind::Expert, l, e);
      }
      if (c.shared_expert_intermediate_size > 0) {
        const int64_t S = c.shared_expert_intermediate_size;
        L.add(p + "mlp.shared_expert.gate_proj.weight", {S, H}, ParamKind::SharedExpert, l);
        L.add(p + "mlp.shared_expert.up_proj.weight", {S, H}, ParamKind::SharedExpert, l);
        L.add(p + "mlp.shared_expert.down_proj.weight", {H, S}, ParamKind::SharedExpert, l);
        L.add(p + "mlp.shared_expert_gate.weight", {1, H}, ParamKind::SharedGate, l);
      }
    } else {
      const int64_t D = c.intermediate_size;
      L.add(p + "mlp.gate_proj.weight", {D, H}, ParamKind::DenseMlp, l);
      L.add(p + "mlp.up_proj.weight", {D, H}, ParamKind::DenseMlp, l);
      L.add(p + "mlp.down_proj.weight", {H, D}, ParamKind::DenseMlp, l);
    }
  }
  L.add("model.norm.weight", {H}, ParamKind::Norm);
  if (!c.tie_word_embeddings) L.add("lm_head.weight", {c.vocab_size, H}, ParamKind::LmHead);
  return L;
}

template <class T>
ModelView<T> ModelView<T>::bind(const ModelConfig& c, const ParamLayout& L, T* base) {
  auto at = [&](const std::string& name) -> T* {
    const ParamSpec* s = L.find(name);
    WATTMOE_CHECK(s != nullptr, "no parameter {}", name);
    return base + s->offset;
  };
  auto opt = [&](const std::string& name) -> T* {
    const ParamSpec* s = L.find(name);
    return s ? base + s->offset : nullptr;
  };
  ModelView v;
  v.embed = at("model.embed_tokens.weight");
  v.final_norm = at("model.norm.weight");
  v.lm_head = c.tie_word_embeddings ? v.embed : at("lm_head.weight");
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = layer_prefix(l);
    LayerView<T> lv;
    lv.ln_attn = at(p + "input_layernorm.weight");
    lv.ln_ffn = at(p + "post_attention_layernorm.weight");
    lv.wq = at(p + "self_attn.q_proj.weight");
    lv.wk = at(p + "self_attn.k_proj.weight");
    lv.wv = at(p + "self_attn.v_proj.weight");
    lv.wo = at(p + "self_attn.o_proj.weight");
    lv.bq = opt(p + "self_attn.q_proj.bias");
    lv.bk = opt(p + "self_attn.k_proj.bias");
    lv.bv = opt(p + "self_attn.v_proj.bias");
    lv.q_norm = opt(p + "self_attn.q_norm.weight");
    lv.k_norm = opt(p + "self_attn.k_norm.weight");
    lv.moe = c.is_moe_layer(l);
    if (lv.moe) {
      lv.router = at((c.arch == Arch::Mixtral ? p + "block_sparse_moe." : p + "mlp.") + "gate.weight");
      for (int e = 0; e < c.num_experts; ++e)
        lv.experts.push_back({at(expert_name(c, l, e, "gate")), at(expert_name(c, l, e, "up")),
                              at(expert_name(c, l, e, "down"))});
      lv.shared = {opt(p + "mlp.shared_expert.gate_proj.weight"), opt(p + "mlp.shared_expert.up_proj.weight"),
                   opt(p + "mlp.shared_expert.down_proj.weight")};
      lv.shared_gate = opt(p + "mlp.shared_expert_gate.weight");
    } else {
      lv.dense = {at(p + "mlp.gate_proj.weight"), at(p + "mlp.up_proj.weight"), at(p + "mlp.down_proj.weight")};
    }
    v.layers.push_back(std::move(lv));
  }
  return v;
}

template struct ModelView<float>;
template struct ModelView<double>;

}  // namespace wattmoe
