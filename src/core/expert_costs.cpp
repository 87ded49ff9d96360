#include "core/expert_costs.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe {

void validate_costs(const ExpertCosts& c, int E, bool required) {
  if (!required && c.fixed.empty() && c.per_token.empty()) return;
  auto check = [E](const std::vector<float>& v, const char* what, const char* unit) {
    WATTMOE_REQUIRE(int64_t(v.size()) == E, "expert costs: {} ({}) has {} entries: expected one per expert (E = {})",
                    what, unit, v.size(), E);
    for (size_t e = 0; e < v.size(); ++e)
      WATTMOE_REQUIRE(std::isfinite(v[e]) && v[e] >= 0.f,
                      "expert costs: {}[{}] = {}: expected a finite number of joules >= 0 ({})", what, e, v[e], unit);
  };
  check(c.fixed, "fixed", "a_e, J per step if the expert is activated");
  check(c.per_token, "per_token", "b_e, J per (token, expert) pair");
}

std::vector<double> per_token_cost(const ExpertCosts& c, int64_t n) {
  WATTMOE_REQUIRE(n >= 1, "per_token_cost: n = {} tokens: expected n >= 1", n);
  WATTMOE_REQUIRE(c.fixed.size() == c.per_token.size(), "expert costs: fixed has {} entries, per_token {}: expected equal",
                  c.fixed.size(), c.per_token.size());
  std::vector<double> out(c.fixed.size());
  for (size_t e = 0; e < out.size(); ++e) out[e] = double(c.fixed[e]) / double(n) + double(c.per_token[e]);
  return out;
}

}  // namespace wattmoe
