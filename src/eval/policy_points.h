// Policy points: the routing settings a sweep or benchmark measures (bench/energy_policies.cpp), written as text
// on a command line or in a JSON file, and turned into the RoutingSpec a runner takes (moe/routing_spec.h).
//
// One point:  POLICY [KEY=VALUE ...]
//   "topk"                       the model's own top-k (the baseline)
//   "topk k_max=1"               top-1
//   "skip beta=0.5"              moe/policy.h's skip with β = 0.5
//   "top_p p=0.7 k_min=1"
//   "cost lambda=1 reuse=2"      cost-aware, step-aware re-pricing from 2 tokens; analytic costs by default
//   "mask r=2"                   top-k over all but the r least-used experts of each layer (usage: top-k counts on
//                                calibration batches, given to point_spec)
//   "topk experts=3,5"           experts 3 and 5 pruned in every layer
// A list: points separated by ';'. A value a/b/c expands into one point per value ("skip beta=0.3/0.5/0.7" is
// three points); at most one key of a point may do so.
// Keys, and the policies that take them (every policy takes r, experts and label):
//   k_max (alias k)  slots K (0 = the model's k)          topk, mask, skip, top_p, cost, budget
//   k_min            fewest experts per token             skip, top_p, budget
//   beta  skip       p  top_p       lambda, reuse  cost   budget_j  budget
//   costs            analytic (default) or a cost table JSON (wattmoe profile)   cost, budget
//   expert_shape     HxI: analytic costs as if each expert had this shape         cost, budget
//   label            the point's name in reports (default: the point as written, single-spaced, values as given)
// JSON file: an array whose items are strings in the syntax above or objects with the same keys
// ({"policy": "skip", "beta": 0.5}); '/' lists are for strings only.
// Errors (wattmoe::Error) name the point and the key: unknown policy (listing the known ones), unknown key, a key
// the policy does not take, a value that is not a number, a duplicate label.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "model/config.h"
#include "moe/policy.h"
#include "moe/routing_spec.h"

namespace wattmoe {

struct PolicyPoint {
  std::string label;   // unique within a list
  std::string policy;  // a moe/policy.h name
  PolicyKnobs knobs;   // everything but the mask
  int mask_least_used = 0;         // r: prune each layer's r least-used experts
  std::vector<int> mask_experts;   // pruned in every layer
  std::string costs = "analytic";  // or a cost table path (cost, budget)
  std::string expert_shape;        // HxI for analytic costs; empty: the model's own
  bool prices() const { return policy == "cost" || policy == "budget"; }
};

PolicyPoint parse_point(const std::string& text);
std::vector<PolicyPoint> parse_points(const std::string& list);  // ';'-separated, '/' expanded
std::vector<PolicyPoint> parse_points_json(const Json& j, const std::string& what);
std::vector<PolicyPoint> load_points_file(const std::string& path);
// Error naming the label when two points share one.
void check_unique_labels(const std::vector<PolicyPoint>& points);

// The r least-used experts of one layer (lowest count first; ties: the higher index first), sorted by index.
std::vector<int> least_used_experts(const std::vector<int64_t>& counts, int r);

// The point's routing for a model. usage[l][e]: (token, expert) pairs of layer l under top-k (needed only when
// mask_least_used > 0; empty rows for dense layers). tokens_per_step: the step size the analytic costs are priced
// at (cost, budget). Validated (validate_routing_spec): errors name the point.
RoutingSpec point_spec(const PolicyPoint& p, const ModelConfig& c, const std::vector<std::vector<int64_t>>& usage,
                       double tokens_per_step);

// {"label", "policy", "knobs": {...}, ...}: what reports print of a point.
Json point_json(const PolicyPoint& p);

}  // namespace wattmoe
