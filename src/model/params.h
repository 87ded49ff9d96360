// The weights of a model as one flat buffer plus a table of named slices, in HF checkpoint names and layout.
// ParamLayout is the single list of every tensor: loading, saving, zeroing gradients and the optimizer all walk it,
// so nothing keeps a parallel list by hand. ModelView binds typed pointers (per layer) to any buffer with that
// layout — the weights, their gradients, or optimizer moments.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace wattmoe {

struct GradMask;

// Lora: a low-rank adapter factor of one routed expert's matrix (model/lora.h); present only when lora_rank > 0.
enum class ParamKind {
  Embedding, Norm, Attention, Bias, Router, Expert, SharedExpert, SharedGate, DenseMlp, LmHead, Lora
};

struct ParamSpec {
  std::string name;
  Shape shape;
  int64_t offset = 0, numel = 0;
  ParamKind kind = ParamKind::Attention;
  int layer = -1;   // -1 for non-layer tensors
  int expert = -1;  // expert index for ParamKind::Expert and ParamKind::Lora
  bool is_matrix() const { return shape.size() == 2; }
};

// Elements [offset, offset + numel) of a buffer in some layout's order (e.g. the tensors test-time adaptation trains).
struct ParamRange {
  int64_t offset = 0, numel = 0;
};

class ParamLayout {
 public:
  static ParamLayout build(const ModelConfig& c);
  const std::vector<ParamSpec>& specs() const { return specs_; }
  int64_t total() const { return total_; }
  const ParamSpec* find(const std::string& name) const;  // null if absent

 private:
  void add(std::string name, Shape shape, ParamKind kind, int layer = -1, int expert = -1);
  std::vector<ParamSpec> specs_;
  std::map<std::string, size_t> index_;
  int64_t total_ = 0;
};

template <class T>
struct FfnView {  // SwiGLU block: down(silu(gate·x) ⊙ up·x)
  T *gate = nullptr, *up = nullptr, *down = nullptr;
  // LoRA factors of each matrix W[out, in]: A [r, in], B [out, r]; W·x becomes W·x + lora_scale·B·(A·x).
  // All null when the model has no adapters (and always for the shared expert and the dense MLP).
  T *gate_A = nullptr, *gate_B = nullptr, *up_A = nullptr, *up_B = nullptr, *down_A = nullptr, *down_B = nullptr;
  bool has_lora() const { return gate_A != nullptr; }
};

template <class T>
struct LayerView {
  T *ln_attn = nullptr, *ln_ffn = nullptr;
  T *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;
  T *bq = nullptr, *bk = nullptr, *bv = nullptr;  // Qwen2-MoE
  T *q_norm = nullptr, *k_norm = nullptr;         // OLMoE
  bool moe = false;
  T* router = nullptr;                            // [E, H]
  std::vector<FfnView<T>> experts;
  FfnView<T> shared;                              // Qwen2-MoE shared expert (gate null when absent)
  T* shared_gate = nullptr;                       // [1, H]
  FfnView<T> dense;                               // Qwen2-MoE dense layers
};

template <class T>
struct ModelView {
  T *embed = nullptr, *final_norm = nullptr, *lm_head = nullptr;  // lm_head == embed when tied
  std::vector<LayerView<T>> layers;
  // With a mask, tensors whose needs[] is 0 bind to null (backward reads a null gradient pointer as "skip").
  static ModelView bind(const ModelConfig& c, const ParamLayout& layout, T* base, const GradMask* mask = nullptr);
};

// Checkpoint tensor names (HF layout) — one place for every architecture's spelling.
std::string layer_prefix(int layer);
std::string expert_name(const ModelConfig& c, int layer, int expert, const char* which);  // which: gate|up|down
// PEFT-style adapter names: a weight name's ".weight" becomes ".lora_A.weight" / ".lora_B.weight".
std::string lora_A_name(const std::string& weight_name);
std::string lora_B_name(const std::string& weight_name);

}  // namespace wattmoe
