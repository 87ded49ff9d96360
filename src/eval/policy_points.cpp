#include "eval/policy_points.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "energy/cost_analytic.h"
#include "energy/cost_table.h"

namespace wattmoe {

namespace {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::stringstream ss(s);
  while (std::getline(ss, item, sep)) out.push_back(item);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n\r"), e = s.find_last_not_of(" \t\n\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string w;
  while (ss >> w) out.push_back(w);
  return out;
}

double to_number(const std::string& v, const std::string& key, const std::string& where) {
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  WATTMOE_REQUIRE(!v.empty() && end && *end == '\0' && !std::isnan(x),
                  "point '{}': {}={} is not a number", where, key, v);
  return x;
}

int to_int(const std::string& v, const std::string& key, const std::string& where) {
  char* end = nullptr;
  const long x = std::strtol(v.c_str(), &end, 10);
  WATTMOE_REQUIRE(!v.empty() && end && *end == '\0' && x >= 0 && x < (1L << 30),
                  "point '{}': {}={} is not a non-negative integer", where, key, v);
  return int(x);
}

// The keys each policy takes besides r, experts and label.
const std::vector<std::string>& policy_keys(const std::string& policy) {
  static const std::vector<std::string> topk{"k_max"}, skip{"beta", "k_min", "k_max"}, top_p{"p", "k_min", "k_max"},
      cost{"lambda", "reuse", "k_max", "costs", "expert_shape"},
      budget{"budget_j", "k_min", "k_max", "costs", "expert_shape"}, none{};
  if (policy == "topk" || policy == "mask") return topk;
  if (policy == "skip") return skip;
  if (policy == "top_p") return top_p;
  if (policy == "cost") return cost;
  if (policy == "budget") return budget;
  return none;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

PolicyPoint build_point(const std::string& policy, const KeyValues& kv, const std::string& where) {
  make_policy(policy);  // an unknown name fails here, listing the known ones
  PolicyPoint p;
  p.policy = policy;
  std::string label;
  std::set<std::string> seen;
  const std::vector<std::string>& takes = policy_keys(policy);
  for (auto [key, value] : kv) {
    if (key == "k") key = "k_max";
    WATTMOE_REQUIRE(seen.insert(key).second, "point '{}': {} given twice", where, key);
    const bool general = key == "r" || key == "experts" || key == "label";
    static const std::vector<std::string> known{"k_max", "k_min", "beta", "p", "lambda", "reuse", "budget_j",
                                                "costs", "expert_shape", "r", "experts", "label"};
    WATTMOE_REQUIRE(std::find(known.begin(), known.end(), key) != known.end(),
                    "point '{}': unknown key '{}' (expected {})", where, key, join(known, ", "));
    WATTMOE_REQUIRE(general || std::find(takes.begin(), takes.end(), key) != takes.end(),
                    "point '{}': {} does not take {} ({} takes {}r, experts, label)", where, policy, key, policy,
                    takes.empty() ? "" : join(takes, ", ") + ", ");
    if (key == "label") {
      WATTMOE_REQUIRE(!value.empty(), "point '{}': empty label", where);
      label = value;
    } else if (key == "k_max") {
      p.knobs.k_max = to_int(value, key, where);
    } else if (key == "k_min") {
      p.knobs.k_min = to_int(value, key, where);
    } else if (key == "beta") {
      p.knobs.beta = float(to_number(value, key, where));
    } else if (key == "p") {
      p.knobs.p = float(to_number(value, key, where));
    } else if (key == "lambda") {
      p.knobs.lambda = float(to_number(value, key, where));
    } else if (key == "reuse") {
      p.knobs.reuse_min_tokens = to_int(value, key, where);
    } else if (key == "budget_j") {
      p.knobs.budget_j = value == "inf" ? std::numeric_limits<double>::infinity() : to_number(value, key, where);
    } else if (key == "costs") {
      WATTMOE_REQUIRE(!value.empty(), "point '{}': costs= needs 'analytic' or a cost table path", where);
      p.costs = value;
    } else if (key == "expert_shape") {
      long long h = 0, i = 0;
      char x = 0, extra = 0;
      WATTMOE_REQUIRE(std::sscanf(value.c_str(), "%lld%c%lld%c", &h, &x, &i, &extra) == 3 && x == 'x' && h > 0 &&
                          i > 0,
                      "point '{}': expert_shape={} is not HxI with positive integers (e.g. 4096x14336)", where, value);
      p.expert_shape = value;
    } else if (key == "r") {
      p.mask_least_used = to_int(value, key, where);
      WATTMOE_REQUIRE(p.mask_least_used >= 1, "point '{}': r={} must be at least 1", where, value);
    } else if (key == "experts") {
      for (const std::string& id : split(value, ',')) p.mask_experts.push_back(to_int(trim(id), key, where));
      WATTMOE_REQUIRE(!p.mask_experts.empty(), "point '{}': experts= needs expert ids (e.g. 3,5)", where);
    }
  }
  WATTMOE_REQUIRE(policy != "mask" || p.mask_least_used > 0 || !p.mask_experts.empty(),
                  "point '{}': mask needs r=N (the N least-used experts) or experts=IDS", where);
  if (label.empty()) {
    std::vector<std::string> parts{policy};
    for (const auto& [key, value] : kv)
      if (key != "label") parts.push_back(key + "=" + value);
    label = join(parts, " ");
  }
  p.label = label;
  return p;
}

KeyValues key_values(const std::vector<std::string>& w, size_t from, const std::string& where) {
  KeyValues kv;
  for (size_t i = from; i < w.size(); ++i) {
    const size_t eq = w[i].find('=');
    WATTMOE_REQUIRE(eq != std::string::npos && eq > 0, "point '{}': '{}' is not KEY=VALUE", where, w[i]);
    kv.emplace_back(w[i].substr(0, eq), w[i].substr(eq + 1));
  }
  return kv;
}

bool expands(const std::string& key) { return key != "costs" && key != "label" && key != "expert_shape"; }

}  // namespace

PolicyPoint parse_point(const std::string& text) {
  const std::vector<std::string> w = words(text);
  WATTMOE_REQUIRE(!w.empty(), "empty policy point (expected e.g. 'topk' or 'skip beta=0.5')");
  const std::string where = join(w, " ");
  return build_point(w[0], key_values(w, 1, where), where);
}

std::vector<PolicyPoint> parse_points(const std::string& list) {
  std::vector<PolicyPoint> out;
  for (const std::string& item : split(list, ';')) {
    const std::vector<std::string> w = words(item);
    if (w.empty()) continue;
    const std::string where = join(w, " ");
    KeyValues kv = key_values(w, 1, where);
    int lists = 0;
    size_t at = 0;
    for (size_t i = 0; i < kv.size(); ++i)
      if (expands(kv[i].first) && kv[i].second.find('/') != std::string::npos) ++lists, at = i;
    WATTMOE_REQUIRE(lists <= 1, "point '{}': only one key may list values with '/'", where);
    if (lists == 0) {
      out.push_back(build_point(w[0], kv, where));
      continue;
    }
    for (const std::string& v : split(kv[at].second, '/')) {
      WATTMOE_REQUIRE(!v.empty(), "point '{}': an empty value in {}={}", where, kv[at].first, kv[at].second);
      KeyValues one = kv;
      one[at].second = v;
      out.push_back(build_point(w[0], one, where));
    }
  }
  WATTMOE_REQUIRE(!out.empty(), "no policy points in '{}'", list);
  check_unique_labels(out);
  return out;
}

std::vector<PolicyPoint> parse_points_json(const Json& j, const std::string& what) {
  WATTMOE_REQUIRE(j.is_array() && !j.empty(), "{}: expected a non-empty JSON array of policy points", what);
  std::vector<PolicyPoint> out;
  for (const Json& item : j) {
    if (item.is_string()) {
      for (PolicyPoint& p : parse_points(item.get<std::string>())) out.push_back(std::move(p));
      continue;
    }
    WATTMOE_REQUIRE(item.is_object() && item.contains("policy") && item["policy"].is_string(),
                    "{}: each point is a string or an object with a \"policy\" name, got {}", what, item.dump());
    const std::string policy = item["policy"].get<std::string>();
    KeyValues kv;
    for (const auto& [key, value] : item.items()) {
      if (key == "policy") continue;
      std::string v;
      if (value.is_string()) {
        v = value.get<std::string>();
      } else if (value.is_number()) {
        v = value.dump();
      } else if (value.is_array()) {
        std::vector<std::string> ids;
        for (const Json& x : value) ids.push_back(x.is_string() ? x.get<std::string>() : x.dump());
        v = join(ids, ",");
      } else {
        fail("{}: point {}: {} must be a number, a string or a list of expert ids", what, item.dump(), key);
      }
      kv.emplace_back(key, v);
    }
    out.push_back(build_point(policy, kv, item.dump()));
  }
  check_unique_labels(out);
  return out;
}

std::vector<PolicyPoint> load_points_file(const std::string& path) { return parse_points_json(read_json_file(path), path); }

void check_unique_labels(const std::vector<PolicyPoint>& points) {
  std::set<std::string> seen;
  for (const PolicyPoint& p : points)
    WATTMOE_REQUIRE(seen.insert(p.label).second, "two policy points are labelled '{}' (give one label=NAME)", p.label);
}

std::vector<int> least_used_experts(const std::vector<int64_t>& counts, int r) {
  std::vector<int> idx(counts.size());
  for (size_t e = 0; e < idx.size(); ++e) idx[e] = int(e);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) {
    return counts[size_t(a)] != counts[size_t(b)] ? counts[size_t(a)] < counts[size_t(b)] : a > b;
  });
  idx.resize(size_t(std::clamp<int>(r, 0, int(idx.size()))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

namespace {

std::shared_ptr<const CostModel> cost_model(const PolicyPoint& p, const ModelConfig& c) {
  if (p.costs != "analytic") {
    auto t = std::make_shared<ProfiledCostModel>(ProfiledCostModel::load(p.costs));
    WATTMOE_REQUIRE(t->num_layers() == c.num_layers, "costs={}: the table has {} layers, the model {}", p.costs,
                    t->num_layers(), c.num_layers);
    for (int l = 0; l < c.num_layers; ++l)
      WATTMOE_REQUIRE(t->num_experts(l) == c.num_experts, "costs={}: layer {} has {} experts, the model {}", p.costs,
                      l, t->num_experts(l), c.num_experts);
    return t;
  }
  ExpertShape shape{c.hidden_size, c.moe_intermediate_size, 2, 2, 3};  // bf16 weights and activations
  if (!p.expert_shape.empty()) {
    long long h = 0, i = 0;
    char x = 0;
    std::sscanf(p.expert_shape.c_str(), "%lld%c%lld", &h, &x, &i);
    shape.hidden = h, shape.ffn = i;
  }
  return std::make_shared<AnalyticCostModel>(
      AnalyticCostModel::uniform(c.num_layers, c.num_experts, shape, HardwareCoeffs{}));
}

}  // namespace

RoutingSpec point_spec(const PolicyPoint& p, const ModelConfig& c, const std::vector<std::vector<int64_t>>& usage,
                       double tokens_per_step) {
  try {
    const int E = c.num_experts;
    RoutingSpec s;
    s.policy = p.policy;
    s.knobs = p.knobs;
    if (!p.mask_experts.empty()) {
      s.knobs.mask.assign(size_t(E), false);
      for (int e : p.mask_experts) {
        WATTMOE_REQUIRE(e >= 0 && e < E, "experts: {} is not an expert id in [0, {})", e, E);
        s.knobs.mask[size_t(e)] = true;
      }
    }
    if (p.mask_least_used > 0) {
      WATTMOE_REQUIRE(p.mask_least_used < E, "r={} leaves no expert of {}", p.mask_least_used, E);
      WATTMOE_REQUIRE(int(usage.size()) == c.num_layers,
                      "r={} needs expert usage counts of all {} layers (got {})", p.mask_least_used, c.num_layers,
                      usage.size());
      for (int l = 0; l < c.num_layers; ++l) {
        PolicyKnobs k = s.knobs;
        if (c.is_moe_layer(l)) {
          WATTMOE_REQUIRE(int(usage[size_t(l)].size()) == E, "usage counts of layer {}: {} experts, the model {}", l,
                          usage[size_t(l)].size(), E);
          if (k.mask.empty()) k.mask.assign(size_t(E), false);
          for (int e : least_used_experts(usage[size_t(l)], p.mask_least_used)) k.mask[size_t(e)] = true;
          int left = 0;
          for (bool m : k.mask) left += m ? 0 : 1;
          WATTMOE_REQUIRE(left >= 1, "layer {}: the mask leaves no expert", l);
        }
        s.layer_knobs.push_back(std::move(k));
      }
    }
    if (p.prices()) {
      const std::shared_ptr<const CostModel> m = cost_model(p, c);
      for (int l = 0; l < c.num_layers; ++l) {
        ExpertCosts ec;
        if (c.is_moe_layer(l)) {
          ec = m->routing_costs(l, std::max(1.0, tokens_per_step));
        } else {
          ec.fixed.assign(size_t(E), 0.f), ec.per_token.assign(size_t(E), 0.f);
        }
        s.costs.push_back(std::move(ec));
      }
    }
    validate_routing_spec(s, c.num_layers, E, c.top_k);
    return s;
  } catch (const Error& e) {
    fail("point '{}': {}", p.label, e.what());
  }
}

Json point_json(const PolicyPoint& p) {
  Json k{{"k_max", p.knobs.k_max}, {"k_min", p.knobs.k_min}};
  if (p.policy == "skip") k["beta"] = p.knobs.beta;
  if (p.policy == "top_p") k["p"] = p.knobs.p;
  if (p.policy == "cost") k["lambda"] = p.knobs.lambda, k["reuse_min_tokens"] = p.knobs.reuse_min_tokens;
  if (p.policy == "budget")
    k["budget_j"] = std::isfinite(p.knobs.budget_j) ? Json(p.knobs.budget_j) : Json("inf");
  if (p.mask_least_used > 0) k["mask_least_used"] = p.mask_least_used;
  if (!p.mask_experts.empty()) k["mask_experts"] = p.mask_experts;
  Json j{{"label", p.label}, {"policy", p.policy}, {"knobs", k}};
  if (p.prices()) j["costs"] = p.costs + (p.expert_shape.empty() ? "" : " " + p.expert_shape);
  return j;
}

}  // namespace wattmoe
