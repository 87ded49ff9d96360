#include "moe/policy.h"
#include "moe/policy_select.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/moe_route_policy_check.h"

namespace wattmoe {

// ---------------------------------------------------------------------------------------------------------------------
// Validation

void validate_knobs(const PolicyKnobs& kn, int E, int model_k) {
  WATTMOE_REQUIRE(E >= 1, "routing policy: number of experts E = {}: expected E >= 1", E);
  WATTMOE_REQUIRE(model_k >= 1 && model_k <= E, "routing policy: model k = {}: expected 1 <= k <= E = {}", model_k, E);
  validate_scalar_knobs(kn, E, model_k);
  if (!kn.mask.empty()) {
    WATTMOE_REQUIRE(int64_t(kn.mask.size()) == E,
                    "policy knob mask has {} entries: expected one per expert (E = {}) or none", kn.mask.size(), E);
    WATTMOE_REQUIRE(std::find(kn.mask.begin(), kn.mask.end(), false) != kn.mask.end(),
                    "policy knob mask prunes all {} experts: expected at least one expert left", E);
  }
}

int resolved_k_max(const PolicyKnobs& kn, int model_k) { return kn.k_max > 0 ? kn.k_max : model_k; }

// ---------------------------------------------------------------------------------------------------------------------
// Energy

double routing_energy(const Routing& r, const ExpertCosts& c) {
  validate_costs(c, r.experts, true);
  std::vector<char> active(size_t(r.experts), 0);
  double j = 0;
  for (int32_t e : r.expert) {
    if (e < 0) continue;
    j += c.per_token[size_t(e)];
    active[size_t(e)] = 1;
  }
  for (int e = 0; e < r.experts; ++e)
    if (active[size_t(e)]) j += c.fixed[size_t(e)];
  return j;
}

template <class T>
double expected_expert_energy(const T* probs, int64_t n, int E, const ExpertCosts& costs) {
  validate_costs(costs, E, true);
  if (n == 0) return 0;
  const std::vector<double> c = per_token_cost(costs, n);
  double j = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int e = 0; e < E; ++e) j += double(probs[t * E + e]) * c[size_t(e)];
  return j;
}

template double expected_expert_energy<float>(const float*, int64_t, int, const ExpertCosts&);
template double expected_expert_energy<double>(const double*, int64_t, int, const ExpertCosts&);

// ---------------------------------------------------------------------------------------------------------------------
// Policies

namespace {

template <class T>
void require_no_nan(const T* v, int64_t n, int E, const char* what) {
  WATTMOE_CHECK(v != nullptr || n == 0, "{} is null", what);
  for (int64_t i = 0; i < n * E; ++i)
    WATTMOE_REQUIRE(!std::isnan(v[i]), "routing policy: {} of token {} expert {} is NaN", what, i / E, i % E);
}

// The token's row [E] of a trace, or null when no trace is kept (select).
RouteReason* why_row(RoutingTrace* tr, int64_t t) { return tr ? &tr->reason[size_t(t * tr->experts)] : nullptr; }

// The unmasked experts of one row in descending score, ties to the lower index; the first min(K, unmasked) go to
// out[0..). Returns how many were written. Same comparator as select_topk, so an unmasked row matches it exactly.
// why (optional, [E]): mask, selected (the first m) or k_max (the rest).
template <class S>
int rank_row(const S* s, int E, const std::vector<bool>& mask, int K, std::vector<int32_t>& idx, int32_t* out,
             RouteReason* why = nullptr) {
  idx.clear();
  for (int e = 0; e < E; ++e)
    if (mask.empty() || !mask[size_t(e)]) idx.push_back(e);
  const int m = std::min<int>(K, int(idx.size()));
  std::partial_sort(idx.begin(), idx.begin() + m, idx.end(),
                    [s](int32_t a, int32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  std::copy(idx.begin(), idx.begin() + m, out);
  if (why) {
    std::fill(why, why + E, RouteReason::kMask);
    for (size_t i = 0; i < idx.size(); ++i) why[idx[i]] = int(i) < m ? RouteReason::kSelected : RouteReason::kSlots;
  }
  return m;
}

// What a prefix rule keeps of a ranked row: `keep` slots, of which the rule alone would keep the first `rule` (the
// rest up to `keep` are there because of k_min).
struct Kept {
  int keep, rule;
};

// Ranks each token's experts by probability (K slots at most, masked experts left out) and keeps the first
// keep(probs of the token, ranked row, ranked count).keep slots; the dropped slots are a suffix of -1. With a trace,
// the dropped slots' reason is `dropped`, the k_min-kept ones' k_min floor.
template <class T, class Keep>
void keep_prefix(const T* probs, int64_t n, int E, int K, const PolicyKnobs& kn, Routing& out, Keep keep,
                 RoutingTrace* tr, RouteReason dropped) {
  std::vector<int32_t> idx;
  for (int64_t t = 0; t < n; ++t) {
    int32_t* row = &out.expert[size_t(t * K)];
    RouteReason* why = why_row(tr, t);
    const int cnt = rank_row(probs + t * E, E, kn.mask, K, idx, row, why);
    const Kept k = keep(probs + t * E, row, cnt);
    if (why)
      for (int s = 0; s < cnt; ++s)
        if (s >= k.keep || s >= k.rule) why[row[s]] = s >= k.keep ? dropped : RouteReason::kFloor;
    for (int s = k.keep; s < K; ++s) row[s] = -1;
  }
  out.recount();
}

// Validates and resets out to [n, K]; returns K.
template <class T>
int prepare(const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs, const PolicyKnobs& kn,
            bool needs_costs, Routing& out) {
  validate_knobs(kn, E, model_k);
  validate_costs(costs, E, needs_costs);
  WATTMOE_REQUIRE(n >= 0, "routing policy: n = {} tokens: expected n >= 0", n);
  require_no_nan(probs, n, E, "router prob");
  const int K = resolved_k_max(kn, model_k);
  out.reset(n, K, E);
  return K;
}

template <class T>
void topk_rows(const T* probs, int64_t n, int E, int K, const std::vector<bool>& mask, Routing& out,
               RoutingTrace* tr) {
  std::vector<int32_t> idx;
  for (int64_t t = 0; t < n; ++t) rank_row(probs + t * E, E, mask, K, idx, &out.expert[size_t(t * K)], why_row(tr, t));
}

template <class D>
class PolicyBase : public RoutingPolicy {
 public:
  void select(const float* logits, const float* probs, int64_t n, int E, int model_k, const ExpertCosts& costs,
              const PolicyKnobs& knobs, Routing& out) const override {
    static_cast<const D&>(*this).template run<float>(logits, probs, n, E, model_k, costs, knobs, out, nullptr);
  }
  void select(const double* logits, const double* probs, int64_t n, int E, int model_k, const ExpertCosts& costs,
              const PolicyKnobs& knobs, Routing& out) const override {
    static_cast<const D&>(*this).template run<double>(logits, probs, n, E, model_k, costs, knobs, out, nullptr);
  }
  void select_traced(const float* logits, const float* probs, int64_t n, int E, int model_k, const ExpertCosts& costs,
                     const PolicyKnobs& knobs, Routing& out, RoutingTrace& trace) const override {
    WATTMOE_REQUIRE(n >= 0 && E >= 1, "routing policy: n = {} tokens, E = {} experts: expected n >= 0, E >= 1", n, E);
    trace.reset(n, E);
    static_cast<const D&>(*this).template run<float>(logits, probs, n, E, model_k, costs, knobs, out, &trace);
  }
};

class TopKPolicy final : public PolicyBase<TopKPolicy> {
 public:
  explicit TopKPolicy(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  template <class T>
  void run(const T*, const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs, const PolicyKnobs& kn,
           Routing& out, RoutingTrace* tr) const {
    const int K = prepare(probs, n, E, model_k, costs, kn, false, out);
    topk_rows(probs, n, E, K, kn.mask, out, tr);
    out.recount();
  }

 private:
  std::string name_;
};

class CostPolicy final : public PolicyBase<CostPolicy> {
 public:
  std::string name() const override { return "cost"; }
  template <class T>
  void run(const T* logits, const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs,
           const PolicyKnobs& kn, Routing& out, RoutingTrace* tr) const {
    const int K = prepare(probs, n, E, model_k, costs, kn, true, out);
    if (n == 0) return out.recount();
    if (kn.lambda == 0.f) {  // rank by probability: exactly topk (softmax rounding could tie distinct logits)
      topk_rows(probs, n, E, K, kn.mask, out, tr);
      return out.recount();
    }
    require_no_nan(logits, n, E, "router logit");
    const std::vector<double> c = per_token_cost(costs, n);
    const double mean = std::accumulate(c.begin(), c.end(), 0.0) / double(E);
    auto pass = [&](const std::vector<double>& price) {
      std::vector<double> s(static_cast<size_t>(E));
      std::vector<int32_t> idx;
      for (int64_t t = 0; t < n; ++t) {
        for (int e = 0; e < E; ++e)
          s[size_t(e)] = double(logits[t * E + e]) - double(kn.lambda) * (mean > 0 ? price[size_t(e)] / mean : 0.0);
        rank_row(s.data(), E, kn.mask, K, idx, &out.expert[size_t(t * K)], why_row(tr, t));
      }
      out.recount();
    };
    pass(c);
    if (kn.reuse_min_tokens > 0) {  // second pass: fixed cost of experts already in use is sunk
      std::vector<double> c2 = c;
      for (int e = 0; e < E; ++e)
        if (out.counts[size_t(e)] >= kn.reuse_min_tokens) c2[size_t(e)] = double(costs.per_token[size_t(e)]);
      pass(c2);
    }
    if (tr) {  // an expert ranked out by its score that its probability alone would have kept: the price did it
      std::vector<int32_t> idx, by_prob(static_cast<size_t>(K));
      for (int64_t t = 0; t < n; ++t) {
        RouteReason* why = why_row(tr, t);
        const int m = rank_row(probs + t * E, E, kn.mask, K, idx, by_prob.data());
        for (int i = 0; i < m; ++i)
          if (why[by_prob[size_t(i)]] == RouteReason::kSlots) why[by_prob[size_t(i)]] = RouteReason::kCost;
      }
    }
  }
};

class TopPPolicy final : public PolicyBase<TopPPolicy> {
 public:
  std::string name() const override { return "top_p"; }
  template <class T>
  void run(const T*, const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs, const PolicyKnobs& kn,
           Routing& out, RoutingTrace* tr) const {
    const int K = prepare(probs, n, E, model_k, costs, kn, false, out);
    keep_prefix(
        probs, n, E, K, kn, out,
        [&](const T* p, const int32_t* row, int cnt) {
          double cum = 0;
          int m = cnt;
          for (int s = 0; s < cnt; ++s) {
            cum += double(p[row[s]]);
            if (cum >= double(kn.p)) {
              m = s + 1;
              break;
            }
          }
          return Kept{std::min(std::max(m, kn.k_min), cnt), m};
        },
        tr, RouteReason::kTopP);
  }
};

class SkipPolicy final : public PolicyBase<SkipPolicy> {
 public:
  std::string name() const override { return "skip"; }
  template <class T>
  void run(const T*, const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs, const PolicyKnobs& kn,
           Routing& out, RoutingTrace* tr) const {
    const int K = prepare(probs, n, E, model_k, costs, kn, false, out);
    keep_prefix(
        probs, n, E, K, kn, out,
        [&](const T* p, const int32_t* row, int cnt) {
          if (cnt == 0) return Kept{0, 0};
          const double thr = double(kn.beta) * double(p[row[0]]);
          int rule = cnt;  // the first slot below the threshold; below k_min the floor keeps it (and those after it)
          for (int s = 1; s < cnt; ++s)
            if (double(p[row[s]]) < thr) {
              rule = std::min(rule, s);
              if (s >= kn.k_min) return Kept{s, rule};
            }
          return Kept{cnt, rule};
        },
        tr, RouteReason::kBeta);
  }
};

class BudgetPolicy final : public PolicyBase<BudgetPolicy> {
 public:
  std::string name() const override { return "budget"; }
  template <class T>
  void run(const T*, const T* probs, int64_t n, int E, int model_k, const ExpertCosts& costs, const PolicyKnobs& kn,
           Routing& out, RoutingTrace* tr) const {
    const int K = prepare(probs, n, E, model_k, costs, kn, true, out);
    topk_rows(probs, n, E, K, kn.mask, out, tr);  // the candidates: each token's top-K, best first
    std::vector<char> keep(out.expert.size(), 0), active(size_t(E), 0);
    double spent = 0;
    struct Cand {
      double w;
      int64_t token;
      int slot;
    };
    std::vector<std::vector<Cand>> cand(static_cast<size_t>(E));
    for (int64_t t = 0; t < n; ++t)
      for (int s = 0; s < K; ++s) {
        const int32_t e = out.expert[size_t(t * K + s)];
        if (e < 0) break;
        if (s < kn.k_min) {  // the floor, paid whatever the budget
          keep[size_t(t * K + s)] = 1;
          spent += costs.per_token[size_t(e)];
          if (!active[size_t(e)]) active[size_t(e)] = 1, spent += costs.fixed[size_t(e)];
        } else {
          cand[size_t(e)].push_back({double(probs[t * E + e]), t, s});
        }
      }
    // All of an expert's candidates share one price, so its best candidate is the one of highest weight (then lower
    // token), and the global best is the best of these E heads. An expert whose head does not fit never will: its
    // price falls only once one of its own candidates is added, and what is left of the budget only shrinks.
    for (auto& v : cand)
      std::stable_sort(v.begin(), v.end(), [](const Cand& a, const Cand& b) { return a.w > b.w; });
    std::vector<size_t> head(size_t(E), 0);
    std::vector<char> alive(size_t(E), 1);
    for (;;) {
      int best = -1;
      double best_ratio = 0;
      for (int e = 0; e < E; ++e) {
        if (!alive[size_t(e)] || head[size_t(e)] == cand[size_t(e)].size()) continue;
        const double price = double(costs.per_token[size_t(e)]) + (active[size_t(e)] ? 0.0 : costs.fixed[size_t(e)]);
        if (!(spent + price <= kn.budget_j)) {
          alive[size_t(e)] = 0;
          continue;
        }
        const Cand& c = cand[size_t(e)][head[size_t(e)]];
        const double ratio = price > 0 ? c.w / price : std::numeric_limits<double>::infinity();
        if (best < 0 || ratio > best_ratio ||
            (ratio == best_ratio && c.token < cand[size_t(best)][head[size_t(best)]].token))
          best = e, best_ratio = ratio;  // equal ratio and token: the lower expert (visited first) stays
      }
      if (best < 0) break;
      const Cand& c = cand[size_t(best)][head[size_t(best)]++];
      keep[size_t(c.token * K + c.slot)] = 1;
      spent += double(costs.per_token[size_t(best)]) + (active[size_t(best)] ? 0.0 : costs.fixed[size_t(best)]);
      active[size_t(best)] = 1;
    }
    for (int64_t t = 0; t < n; ++t) {  // compact each row, keeping the descending-probability order
      int32_t* row = &out.expert[size_t(t * K)];
      if (RouteReason* why = why_row(tr, t))
        for (int s = 0; s < K && row[s] >= 0; ++s)
          if (!keep[size_t(t * K + s)] || s < kn.k_min)
            why[row[s]] = keep[size_t(t * K + s)] ? RouteReason::kFloor : RouteReason::kBudget;
      int w = 0;
      for (int s = 0; s < K; ++s)
        if (keep[size_t(t * K + s)]) row[w++] = row[s];
      for (; w < K; ++w) row[w] = -1;
    }
    out.recount();
  }
};

}  // namespace

const char* route_reason_name(RouteReason r) {
  switch (r) {
    case RouteReason::kSelected: return "selected";
    case RouteReason::kFloor: return "k_min floor";
    case RouteReason::kMask: return "mask";
    case RouteReason::kSlots: return "k_max";
    case RouteReason::kBeta: return "beta";
    case RouteReason::kTopP: return "top_p";
    case RouteReason::kBudget: return "budget";
    case RouteReason::kCost: return "cost";
  }
  return "?";
}

void RoutingTrace::reset(int64_t n, int E) {
  tokens = n;
  experts = E;
  reason.assign(size_t(n * E), RouteReason::kSelected);
}

const std::vector<std::string>& policy_names() {
  static const std::vector<std::string> names = {"topk", "cost", "top_p", "skip", "budget", "mask"};
  return names;
}

std::unique_ptr<RoutingPolicy> make_policy(const std::string& name) {
  if (name == "topk" || name == "mask") return std::make_unique<TopKPolicy>(name);
  if (name == "cost") return std::make_unique<CostPolicy>();
  if (name == "top_p") return std::make_unique<TopPPolicy>();
  if (name == "skip") return std::make_unique<SkipPolicy>();
  if (name == "budget") return std::make_unique<BudgetPolicy>();
  std::string valid;
  for (const auto& s : policy_names()) valid += (valid.empty() ? "" : ", ") + s;
  fail("unknown routing policy '{}': expected one of {}", name, valid);
}

}  // namespace wattmoe

namespace wattmoe {

void RoutingEnergyTally::add(int layer, const Routing& r, const ExpertCosts& c) {
  if (joules.size() <= size_t(layer)) {
    joules.resize(size_t(layer) + 1, 0.0);
    tokens.resize(size_t(layer) + 1, 0);
    pairs.resize(size_t(layer) + 1, 0);
  }
  joules[size_t(layer)] += routing_energy(r, c);
  tokens[size_t(layer)] += r.tokens;
  for (int32_t cnt : r.counts) pairs[size_t(layer)] += cnt;
}

RoutingObserver tally_observer(std::vector<ExpertCosts> layer_costs, double fixed_share,
                               std::shared_ptr<RoutingEnergyTally> tally) {
  WATTMOE_REQUIRE(tally && !layer_costs.empty(), "tally_observer: needs costs and a tally");
  for (ExpertCosts& c : layer_costs)
    for (float& a : c.fixed) a = float(a * fixed_share);
  return [costs = std::move(layer_costs), tally = std::move(tally)](int layer, const Routing& r) {
    tally->add(layer, r, costs.size() == 1 ? costs[0] : costs.at(size_t(layer)));
  };
}

double RoutingEnergyTally::total_joules() const {
  double s = 0;
  for (double j : joules) s += j;
  return s;
}

double RoutingEnergyTally::joules_per_token() const {
  double s = 0;
  for (size_t l = 0; l < joules.size(); ++l)
    if (tokens[l] > 0) s += joules[l] / double(tokens[l]);
  return s;
}

double RoutingEnergyTally::experts_per_token() const {
  double s = 0;
  int n = 0;
  for (size_t l = 0; l < tokens.size(); ++l)
    if (tokens[l] > 0) s += double(pairs[l]) / double(tokens[l]), ++n;
  return n ? s / n : 0;
}

}  // namespace wattmoe
