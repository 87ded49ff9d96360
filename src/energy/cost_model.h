// CostModel: what running an expert costs, per (layer, expert), as a fixed and a marginal part:
//   joules(tokens) = a + b·tokens   (a: weight reads + launch, paid once per step if the expert runs at all;
//                                    b: the marginal FLOPs and activations of one more token)
// and the same form for seconds. A model that is not linear (the roofline) returns the tangent at the token
// count asked for. Two sources implement this: AnalyticCostModel (FLOPs and bytes) and ProfiledCostModel
// (a measured table).
// Routing receives plain vectors: routing_costs() produces the ExpertCosts (core/expert_costs.h) that moe/, adapt/
// and control/ read; moe/ never sees this class.
#pragma once
#include <string>
#include <vector>

#include "core/expert_costs.h"

namespace wattmoe {

struct LinearCost {
  double a = 0, b = 0;
  double at(double tokens) const { return tokens > 0 ? a + b * tokens : 0; }  // an idle expert costs nothing
};

struct ExpertCost {
  LinearCost joules, seconds;
  double spread = 0;  // relative standard deviation of measurements (0 when not measured)
};

class CostModel {
 public:
  virtual ~CostModel() = default;
  virtual std::string name() const = 0;
  virtual int num_layers() const = 0;
  virtual int num_experts(int layer) const = 0;
  // The linear form valid around `tokens` routed to this expert in one step (tokens < 1 is taken as 1).
  virtual ExpertCost expert_cost(int layer, int expert, double tokens) const = 0;

  double joules(int layer, int expert, double tokens) const;
  double seconds(int layer, int expert, double tokens) const;
  // What the layer's experts cost for routing, from the linear form at `tokens` tokens per step (< 1 taken as 1):
  // fixed = a_e, per_token = b_e (joules, as float). Policies must see the step, so the fixed activation cost is
  // handed over separately (ARCHITECTURE.md); per_token_cost(costs, n) gives a_e / n + b_e.
  ExpertCosts routing_costs(int layer, double tokens) const;
  // Predicted energy / time of one layer step with counts[e] tokens on expert e (0 = not activated).
  double layer_joules(int layer, const std::vector<int>& counts) const;
  double layer_seconds(int layer, const std::vector<int>& counts) const;

 protected:
  void check_index(int layer, int expert) const;  // Error naming the model and the bad index
};

}  // namespace wattmoe
