// The settings of test-time adaptation's optimizer step, in one place for both homes of that step: the host optimizer
// (adapt/adapt_optimizer.h, the reference, whose header states the semantics) and runners that take the step on their
// own device (Runner::adapt_optimizer_begin, model/runner.h).
#pragma once
#include <cstdint>

#include "model/params.h"

namespace wattmoe {

enum class AdaptOptimizerKind { Sgd, AdamW };

struct AdaptOptimConfig {
  AdaptOptimizerKind kind = AdaptOptimizerKind::Sgd;
  double lr = 1e-3;            // > 0
  double momentum = 0.9;       // sgd, [0, 1)
  bool nesterov = false;       // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;  // adamw
  double clip = 1.0;           // max global grad norm over trainable elements; 0 = off
  double lr_router = 1, lr_norms = 1, lr_lora = 1;  // > 0: multipliers of lr for those parameter kinds
  int64_t lr_decay_steps = 0;  // ≥ 0; 0 = constant lr
  double lr_min_ratio = 0;     // [0, 1]: floor of the decay, as a share of lr
};

// Elements whose update is scaled (kind's multiplier ≠ 1), as ranges with their multiplier.
struct ScaledRange {
  ParamRange range;
  double mult = 1;
};

}  // namespace wattmoe
