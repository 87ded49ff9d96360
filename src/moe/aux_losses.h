// The router's auxiliary training losses over all MoE layers of one forward (router_view.h), the one definition the
// CPU and GPU models share:
//   load balance  transformers' load_balancing_loss_func over the concatenation of all MoE layers' router logits:
//                 E · Σ_e f_e · P_e, f_e = (top-k selections of e) / rows, P_e = mean router probability of e over
//                 rows (rows = N · MoE layers). The selection is the model's own top-k of the probabilities, whatever
//                 policy routed the tokens.
//   z             the router z-loss (ST-MoE): mean over rows of logsumexp(logits)², gradient 2·lse·softmax / rows.
// Returns both values; for non-zero coefficients ADDS coef × gradient into each MoE layer's drouter.
#pragma once
#include "moe/router_view.h"

namespace wattmoe {

struct AuxLossValues {
  double load_balance = 0, z = 0;
};

template <class T>
AuxLossValues router_aux_losses(const RouterViews<T>& v, double lb_coef, double z_coef);

}  // namespace wattmoe
