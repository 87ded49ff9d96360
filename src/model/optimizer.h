// AdamW over a flat parameter buffer (shared by pre-training and test-time adaptation). Weight decay is decoupled
// and applied only to matrices (2-D tensors); norms, biases and 1-D gains are not decayed. A mask restricts the
// update to chosen parameters (the adaptation's parameter groups).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/params.h"

namespace wattmoe {

struct AdamWConfig {
  double lr = 3e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(const ParamLayout& layout, AdamWConfig cfg);
  // One step with learning rate lr on params, given grads (same layout). Parameters outside `trainable` (if set)
  // are left untouched and their moments stay zero.
  void step(float* params, const float* grads, double lr);
  void set_trainable(std::vector<uint8_t> mask);  // [layout.total()], 1 = update
  int64_t steps() const { return t_; }
  const AdamWConfig& config() const { return cfg_; }

  // Moments in the layout's names ("exp_avg.NAME", "exp_avg_sq.NAME") for checkpoints.
  void save(const std::string& path) const;
  void load(const std::string& path);

 private:
  const ParamLayout& layout_;
  AdamWConfig cfg_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;
  // The runs [begin, end) of elements that step updates: the whole layout, or the trainable mask's runs (test-time
  // adaptation trains ~10% of a model: walking only those runs saves a pass over the rest every step).
  std::vector<std::pair<int64_t, int64_t>> runs_;
  int64_t t_ = 0;
};

// What AdamW::save/load read and write, shared with the GPU trainer: one safetensors file with "exp_avg.NAME" and
// "exp_avg_sq.NAME" per tensor of the layout (F32, the tensor's shape) and the step in its metadata.
void save_adam_moments(const std::string& path, const ParamLayout& layout, const float* m, const float* v,
                       int64_t step);
int64_t load_adam_moments(const std::string& path, const ParamLayout& layout, float* m, float* v);  // returns the step

// 1 where AdamW decays (matrices), 0 elsewhere; [layout.total()].
std::vector<uint8_t> weight_decay_mask(const ParamLayout& layout);

// Global L2 norm of a gradient buffer; scales it in place to max_norm when larger. Returns the norm before clipping.
double clip_grad_norm(float* grads, int64_t n, double max_norm);

}  // namespace wattmoe
