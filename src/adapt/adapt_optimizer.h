// The optimizer test-time adaptation steps with: SGD with momentum (adapt/sgd.h) or AdamW (model/optimizer.h, with
// its per-element trainable mask), both touching only the trainable elements, after clipping the gradient's global
// L2 norm — taken over the trainable elements only — to `clip` (0 = no clipping).
//
// AdamW's weight decay is decoupled and applies to matrices only (router, LoRA factors); the default here is 0 — the
// L2 anchor to the source weights (adapt/anchor.h) is the regulariser adaptation uses.
//
// Learning rate of step t (t = 0, 1, … since the last reset): lr_t = lr · max(lr_min_ratio, (1 + t/lr_decay_steps)^−½)
// (lr_decay_steps 0: constant lr). Per-group rates: the router, norm and LoRA elements move by lr_router / lr_norms /
// lr_lora times the update the optimizer computed at lr_t. Both optimizers' updates are linear in the learning rate
// (AdamW's decoupled decay included), so scaling a group's update is exactly stepping that group with the scaled
// rate; momenta and Adam moments do not depend on it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adapt/param_groups.h"
#include "adapt/sgd.h"
#include "model/adapt_optim_config.h"
#include "model/optimizer.h"
#include "core/parallel_spans.h"

namespace wattmoe {

AdaptOptimizerKind parse_adapt_optimizer(const std::string& name);  // "sgd" | "adamw", Error otherwise
const char* adapt_optimizer_name(AdaptOptimizerKind k);

// Error naming the field and its valid range.
void validate_adapt_optim(const AdaptOptimConfig& c);

// lr_t of the header comment for step t (0-based).
double scheduled_lr(const AdaptOptimConfig& c, int64_t t);

// The router / norm / LoRA tensors inside the groups whose multiplier in c is not 1.
std::vector<ScaledRange> group_lr_ranges(const ParamGroups& g, const ModelConfig& mc, const ParamLayout& layout,
                                         const AdaptOptimConfig& c);

// Global L2 norm of grads over the ranges; scales those elements to max_norm when larger (max_norm 0 = never).
// Returns the norm before clipping.
double clip_grad_ranges(float* grads, const std::vector<ParamRange>& ranges, double max_norm);

class AdaptOptimizer {
 public:
  // layout must outlive the optimizer (AdamW keeps a reference).
  // scaled: the elements (inside ranges) whose update is multiplied (group_lr_ranges); empty = none.
  AdaptOptimizer(const ParamLayout& layout, std::vector<uint8_t> trainable, std::vector<ParamRange> ranges,
                 AdaptOptimConfig cfg, std::vector<ScaledRange> scaled = {});
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
  std::vector<ScaledRange> scaled_;
  Spans scaled_spans_;                  // scaled_'s ranges as spans, with their flat starts and multipliers
  std::vector<int64_t> scaled_starts_;
  std::vector<double> scaled_mult_;
  int64_t scaled_elements_ = 0;
  std::vector<float> before_;  // the scaled elements before a step
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<SgdMomentum> sgd_;
};

}  // namespace wattmoe
