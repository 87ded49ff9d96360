#include "model/params.h"

#include "core/error.h"
#include "model/grad_mask.h"

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

namespace {

std::string with_suffix(const std::string& weight_name, const char* suffix) {
  const std::string w = ".weight";
  WATTMOE_CHECK(weight_name.size() > w.size() && weight_name.compare(weight_name.size() - w.size(), w.size(), w) == 0,
                "{} is not a weight name", weight_name);
  return weight_name.substr(0, weight_name.size() - w.size()) + suffix;
}

}  // namespace

std::string lora_A_name(const std::string& weight_name) { return with_suffix(weight_name, ".lora_A.weight"); }
std::string lora_B_name(const std::string& weight_name) { return with_suffix(weight_name, ".lora_B.weight"); }

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
  const int64_t H = c.hidden_size, E = c.num_experts, I = c.moe_intermediate_size, r = c.lora_rank;
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
        if (r > 0) {  // adapters of W[out, in]: A [r, in], B [out, r]
          for (const char* which : {"gate", "up", "down"}) {
            const bool down = which[0] == 'd';
            const int64_t in = down ? I : H, out = down ? H : I;
            const std::string n = expert_name(c, l, e, which);
            L.add(lora_A_name(n), {r, in}, ParamKind::Lora, l, e);
            L.add(lora_B_name(n), {out, r}, ParamKind::Lora, l, e);
          }
        }
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
ModelView<T> ModelView<T>::bind(const ModelConfig& c, const ParamLayout& L, T* base, const GradMask* mask) {
  WATTMOE_CHECK(!mask || mask->needs.size() == L.specs().size(), "gradient mask has {} entries for {} tensors",
                mask ? mask->needs.size() : 0, L.specs().size());
  auto ptr = [&](const ParamSpec* s) -> T* { return mask && !mask->need(*s, L) ? nullptr : base + s->offset; };
  auto at = [&](const std::string& name) -> T* {
    const ParamSpec* s = L.find(name);
    WATTMOE_CHECK(s != nullptr, "no parameter {}", name);
    return ptr(s);
  };
  auto opt = [&](const std::string& name) -> T* {
    const ParamSpec* s = L.find(name);
    return s ? ptr(s) : nullptr;
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
      for (int e = 0; e < c.num_experts; ++e) {
        FfnView<T> f;
        const std::string gn = expert_name(c, l, e, "gate"), un = expert_name(c, l, e, "up"),
                          dn = expert_name(c, l, e, "down");
        f.gate = at(gn), f.up = at(un), f.down = at(dn);
        if (c.lora_rank > 0) {
          f.gate_A = at(lora_A_name(gn)), f.gate_B = at(lora_B_name(gn));
          f.up_A = at(lora_A_name(un)), f.up_B = at(lora_B_name(un));
          f.down_A = at(lora_A_name(dn)), f.down_B = at(lora_B_name(dn));
        }
        lv.experts.push_back(f);
      }
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
