#include "energy/cost_table.h"


#include "core/error.h"
#include "energy/json_fields.h"

namespace wattmoe {

namespace {
constexpr const char* kFormat = "wattmoe.cost_table.v1";
constexpr double kMaxCost = 1e30;  // J, s or relative spread: far above any measurement, well inside a float
}

ProfiledCostModel::ProfiledCostModel(std::vector<std::vector<ExpertCost>> layers, std::string device)
    : layers_(std::move(layers)), device_(std::move(device)) {
  WATTMOE_REQUIRE(!layers_.empty(), "profiled cost model: expected at least one layer");
  for (size_t l = 0; l < layers_.size(); ++l)
    WATTMOE_REQUIRE(!layers_[l].empty(), "profiled cost model: layer {}: expected at least one expert", l);
}

ProfiledCostModel ProfiledCostModel::from_json(const Json& j, const std::string& where) {
  JsonWhere w{where, ""};
  WATTMOE_REQUIRE(j.is_object(), "{}: expected a JSON object (a cost table)", where);
  // The profiler's extension fields (energy/profiler.h: profile_to_json) are accepted and not read here.
  json_no_unknown_keys(j, w, {"format", "device", "num_layers", "num_experts", "layers", "blocks", "token_counts",
                              "sensor", "simulated", "method", "idle_w", "command", "options", "hardware", "sm_limits",
                              "launch_records"});
  const Json& fmt_v = json_member(j, w, "format");
  WATTMOE_REQUIRE(fmt_v.is_string() && fmt_v.get<std::string>() == kFormat, "{}: expected \"{}\", got {}",
                  w.key("format").str(), kFormat, fmt_v.dump());
  std::string device;
  if (j.contains("device")) {
    WATTMOE_REQUIRE(j["device"].is_string(), "{}: expected a string", w.key("device").str());
    device = j["device"].get<std::string>();
  }
  const Json& layers = json_array(j, w, "layers");
  WATTMOE_REQUIRE(!layers.empty(), "{}: expected at least one layer", w.key("layers").str());
  if (j.contains("num_layers")) {
    int64_t n = json_int(j, w, "num_layers", {}, 1);
    WATTMOE_REQUIRE(size_t(n) == layers.size(), "{}: says {} but the layers array has {}", w.key("num_layers").str(),
                    n, layers.size());
  }
  const int64_t num_experts = j.contains("num_experts") ? json_int(j, w, "num_experts", {}, 1) : -1;
  std::vector<std::vector<ExpertCost>> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    JsonWhere wl = w.key("layers").index(l);
    const Json& lj = layers[l];
    WATTMOE_REQUIRE(lj.is_object(), "{}: expected an object", wl.str());
    json_no_unknown_keys(lj, wl, {"layer", "experts"});
    if (lj.contains("layer")) {
      int64_t idx = json_int(lj, wl, "layer", {}, 0);
      WATTMOE_REQUIRE(size_t(idx) == l, "{}: says layer {} at position {} (layers must be listed in order)",
                      wl.key("layer").str(), idx, l);
    }
    const Json& experts = json_array(lj, wl, "experts");
    WATTMOE_REQUIRE(!experts.empty(), "{}: expected at least one expert", wl.key("experts").str());
    WATTMOE_REQUIRE(num_experts < 0 || size_t(num_experts) == experts.size(),
                    "{}: has {} experts but num_experts says {}", wl.key("experts").str(), experts.size(), num_experts);
    std::vector<ExpertCost> row;
    for (size_t e = 0; e < experts.size(); ++e) {
      JsonWhere we = wl.key("experts").index(e);
      const Json& ej = experts[e];
      WATTMOE_REQUIRE(ej.is_object(), "{}: expected an object", we.str());
      json_no_unknown_keys(ej, we, {"a_j", "b_j", "a_s", "b_s", "spread", "name", "measurements", "fit"});
      ExpertCost c;
      c.joules.a = json_number(ej, we, "a_j", {}, 0.0);
      c.joules.b = json_number(ej, we, "b_j", {}, 0.0);
      c.seconds.a = json_number(ej, we, "a_s", {}, 0.0);
      c.seconds.b = json_number(ej, we, "b_s", {}, 0.0);
      c.spread = json_number(ej, we, "spread", 0.0, 0.0);
      // Routing carries the costs as floats (core/expert_costs.h): a larger value would become infinite there.
      for (const auto& [key, v] : {std::pair{"a_j", c.joules.a}, std::pair{"b_j", c.joules.b},
                                   std::pair{"a_s", c.seconds.a}, std::pair{"b_s", c.seconds.b},
                                   std::pair{"spread", c.spread}})
        WATTMOE_REQUIRE(v <= kMaxCost, "{}: {} (expected at most {:g})", we.key(key).str(), v, kMaxCost);
      WATTMOE_REQUIRE(c.joules.a + c.joules.b > 0, "{}: a_j + b_j: expected > 0 (an expert that costs nothing was "
                      "not measured)", we.str());
      row.push_back(c);
    }
    out.push_back(std::move(row));
  }
  return ProfiledCostModel(std::move(out), device);
}

ProfiledCostModel ProfiledCostModel::load(const std::string& path) {
  return from_json(parse_json_file(path, "cost table"), "cost table " + path);
}

int ProfiledCostModel::num_experts(int layer) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers(), "cost model profiled: layer {} out of range [0, {})", layer,
                  num_layers());
  return int(layers_[size_t(layer)].size());
}

ExpertCost ProfiledCostModel::expert_cost(int layer, int expert, double) const {
  check_index(layer, expert);
  return layers_[size_t(layer)][size_t(expert)];
}

Json cost_table_to_json(const CostModel& m, double tokens, const std::string& device) {
  Json j = Json::object();
  j["format"] = kFormat;
  if (!device.empty()) j["device"] = device;
  j["num_layers"] = m.num_layers();
  Json layers = Json::array();
  for (int l = 0; l < m.num_layers(); ++l) {
    Json experts = Json::array();
    for (int e = 0; e < m.num_experts(l); ++e) {
      ExpertCost c = m.expert_cost(l, e, tokens);
      experts.push_back({{"a_j", c.joules.a}, {"b_j", c.joules.b}, {"a_s", c.seconds.a}, {"b_s", c.seconds.b},
                         {"spread", c.spread}});
    }
    layers.push_back({{"layer", l}, {"experts", std::move(experts)}});
  }
  j["layers"] = std::move(layers);
  return j;
}

void save_cost_table(const std::string& path, const CostModel& m, double tokens, const std::string& device) {
  write_json_file(path, cost_table_to_json(m, tokens, device));
}

}  // namespace wattmoe
