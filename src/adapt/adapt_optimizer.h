// The optimizer test-time adaptation steps with: SGD with momentum (adapt/sgd.h) or AdamW (train/optimizer.h, with
// its per-element trainable mask), both touching only the trainable elements, after clipping the gradient's global
// L2 norm — taken over the trainable elements only — to `clip` (0 = no clipping).
//
// AdamW's weight decay is decoupled and applies to matrices only (router, LoRA factors); the default here is 0 — the
// L2 anchor to the source weights (adapt/anchor.h) is the regulariser adaptation uses.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapt/param_groups.h"
#include "adapt/sgd.h"
#include "train/optimizer.h"

namespace wattmoe {

enum class AdaptOptimizerKind { Sgd, AdamW };
AdaptOptimizerKind parse_adapt_optimizer(const std::string& name);  // "sgd" | "adamw", Error otherwise
const char* adapt_optimizer_name(AdaptOptimizerKind k);

struct AdaptOptimConfig {
  AdaptOptimizerKind kind = AdaptOptimizerKind::Sgd;
  double lr = 1e-3;            // > 0
  double momentum = 0.9;       // sgd, [0, 1)
  bool nesterov = false;       // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;  // adamw
  double clip = 1.0;           // max global grad norm over trainable elements; 0 = off
};
// Error naming the field and its valid range.
void validate_adapt_optim(const AdaptOptimConfig& c);

// Global L2 norm of grads over the ranges; scales those elements to max_norm when larger (max_norm 0 = never).
// Returns the norm before clipping.
double clip_grad_ranges(float* grads, const std::vector<ParamRange>& ranges, double max_norm);

class AdaptOptimizer {
 public:
  // layout must outlive the optimizer (AdamW keeps a reference).
  AdaptOptimizer(const ParamLayout& layout, std::vector<uint8_t> trainable, std::vector<ParamRange> ranges,
                 AdaptOptimConfig cfg);
  // Clips grads (in place, trainable elements) and steps. Returns the gradient norm before clipping.
  double step(float* params, float* grads);
  void reset();  // fresh optimizer state (moments / velocity, step count)
  int64_t steps() const;
  const AdaptOptimConfig& config() const { return cfg_; }

 private:
  const ParamLayout& layout_;
  std::vector<uint8_t> trainable_;
  std::vector<ParamRange> ranges_;
  AdaptOptimConfig cfg_;
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<SgdMomentum> sgd_;
};

}  // namespace wattmoe
