#include "eval/explain.h"

#include <algorithm>

#include "core/error.h"

namespace wattmoe {

Explanation explain_routing(Runner& run, const std::vector<int32_t>& ids, const RoutingSetup& routing) {
  const ModelConfig& c = run.config();
  const int64_t T = int64_t(ids.size());
  WATTMOE_REQUIRE(T >= 1 && T <= c.max_position_embeddings,
                  "explain: {} tokens: expected 1 to {} (the model's context; use --max-tokens)", T,
                  c.max_position_embeddings);
  run.forward(ids.data(), 1, int(T));
  const RouterViews<float> views = run.router_views();
  Explanation x{ids, c.num_experts, c.top_k, {}};
  const int E = c.num_experts;
  const RoutingSpec spec = routing.spec();
  for (int l = 0; l < c.num_layers; ++l) {
    const RouterView<float>& v = views.layers.at(size_t(l));
    if (!v.moe()) continue;
    const PolicyKnobs& kn = spec.knobs_for(l);
    const ExpertCosts& costs = routing.layer_costs.at(size_t(l));
    Routing r;
    RoutingTrace trace;
    routing.policy->select_traced(v.logits, v.probs, T, E, c.top_k, costs, kn, r, trace);
    const Routing& used = run.routing(l);
    WATTMOE_CHECK(used.expert == r.expert, "explain: layer {}: the traced selection differs from the forward's", l);
    const std::vector<double> cost = per_token_cost(costs, T);
    ExplainedLayer out{l, {}, costs.fixed.empty() ? 0.0 : routing_energy(r, costs)};
    for (int64_t t = 0; t < T; ++t) {
      std::vector<ExplainedExpert> row;
      for (int e = 0; e < E; ++e)
        row.push_back({e, v.probs[t * E + e], cost.empty() ? 0.0 : cost[size_t(e)], trace.at(t, e)});
      std::stable_sort(row.begin(), row.end(),
                       [](const ExplainedExpert& a, const ExplainedExpert& b) { return a.prob > b.prob; });
      out.tokens.push_back(std::move(row));
    }
    x.layers.push_back(std::move(out));
  }
  return x;
}

Json explanation_json(const Explanation& x, const RoutingSetup& routing, const Tokenizer& tok) {
  Json tokens = Json::array();
  for (size_t i = 0; i < x.ids.size(); ++i)
    tokens.push_back({{"pos", i}, {"id", x.ids[i]}, {"text", tok.decode(std::span(&x.ids[i], 1))}});
  Json layers = Json::array();
  for (const ExplainedLayer& l : x.layers) {
    Json per_token = Json::array();
    for (const auto& row : l.tokens) {
      Json experts = Json::array();
      for (const ExplainedExpert& e : row)
        experts.push_back({{"expert", e.expert}, {"prob", e.prob}, {"cost_j", e.cost_j}, {"selected", e.selected()},
                           {"reason", route_reason_name(e.reason)}});
      per_token.push_back(std::move(experts));
    }
    layers.push_back({{"layer", l.layer}, {"step_energy_j", l.step_energy_j}, {"tokens", std::move(per_token)}});
  }
  return Json{{"schema", "wattmoe.explain/1"}, {"routing", routing.describe()}, {"experts", x.experts}, {"model_k", x.model_k},
              {"device", "cpu"}, {"tokens", std::move(tokens)}, {"layers", std::move(layers)}};
}

}  // namespace wattmoe
