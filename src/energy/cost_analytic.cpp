#include "energy/cost_analytic.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace wattmoe {

HardwareCoeffs HardwareCoeffs::from_sim(const SimGpuParams& p) {
  HardwareCoeffs h;
  h.static_w = p.idle_w + p.active_w;
  h.pj_per_flop = p.pj_per_flop;
  h.pj_per_byte = p.pj_per_byte;
  h.peak_flops = p.peak_flops;
  h.bandwidth_bytes_per_s = p.bandwidth_bytes_per_s;
  h.launch_s = p.launch_overhead_s;
  return h;
}

AnalyticCostModel::AnalyticCostModel(std::vector<std::vector<ExpertShape>> layers, HardwareCoeffs hw)
    : layers_(std::move(layers)), hw_(hw) {
  WATTMOE_REQUIRE(!layers_.empty(), "analytic cost model: expected at least one layer");
  auto finite_nonneg = [](double v) { return std::isfinite(v) && v >= 0; };
  WATTMOE_REQUIRE(finite_nonneg(hw_.static_w) && finite_nonneg(hw_.pj_per_flop) && finite_nonneg(hw_.pj_per_byte) &&
                      finite_nonneg(hw_.launch_s),
                  "analytic cost model: static_w, pj_per_flop, pj_per_byte, launch_s: expected finite numbers >= 0");
  WATTMOE_REQUIRE(hw_.peak_flops > 0 && hw_.bandwidth_bytes_per_s > 0,
                  "analytic cost model: peak_flops and bandwidth_bytes_per_s: expected > 0, got {} and {}",
                  hw_.peak_flops, hw_.bandwidth_bytes_per_s);
  for (size_t l = 0; l < layers_.size(); ++l) {
    WATTMOE_REQUIRE(!layers_[l].empty(), "analytic cost model: layer {}: expected at least one expert", l);
    for (size_t e = 0; e < layers_[l].size(); ++e) {
      const ExpertShape& s = layers_[l][e];
      WATTMOE_REQUIRE(s.hidden > 0 && s.ffn > 0 && s.matrices > 0,
                      "analytic cost model: layer {} expert {}: hidden, ffn, matrices: expected > 0, got {}, {}, {}", l,
                      e, s.hidden, s.ffn, s.matrices);
      WATTMOE_REQUIRE(s.weight_bytes > 0 && s.act_bytes > 0,
                      "analytic cost model: layer {} expert {}: weight_bytes, act_bytes: expected > 0, got {}, {}", l, e,
                      s.weight_bytes, s.act_bytes);
    }
  }
}

AnalyticCostModel AnalyticCostModel::uniform(int num_layers, int num_experts, ExpertShape shape, HardwareCoeffs hw) {
  WATTMOE_REQUIRE(num_layers > 0 && num_experts > 0,
                  "analytic cost model: expected layers > 0 and experts > 0, got {} and {}", num_layers, num_experts);
  return AnalyticCostModel(
      std::vector<std::vector<ExpertShape>>(size_t(num_layers), std::vector<ExpertShape>(size_t(num_experts), shape)),
      hw);
}

int AnalyticCostModel::num_experts(int layer) const {
  WATTMOE_REQUIRE(layer >= 0 && layer < num_layers(), "cost model analytic: layer {} out of range [0, {})", layer,
                  num_layers());
  return int(layers_[size_t(layer)].size());
}

double AnalyticCostModel::flops(int layer, int expert, double tokens) const {
  check_index(layer, expert);
  return expert_work(layers_[size_t(layer)][size_t(expert)], tokens).flops;
}

double AnalyticCostModel::bytes(int layer, int expert, double tokens) const {
  check_index(layer, expert);
  return expert_work(layers_[size_t(layer)][size_t(expert)], tokens).bytes;
}

double AnalyticCostModel::exact_seconds(int layer, int expert, double tokens) const {
  if (tokens <= 0) return 0;
  return std::max(flops(layer, expert, tokens) / hw_.peak_flops, bytes(layer, expert, tokens) / hw_.bandwidth_bytes_per_s) +
         hw_.launch_s;
}

double AnalyticCostModel::exact_joules(int layer, int expert, double tokens) const {
  if (tokens <= 0) return 0;
  return hw_.static_w * exact_seconds(layer, expert, tokens) +
         1e-12 * (hw_.pj_per_flop * flops(layer, expert, tokens) + hw_.pj_per_byte * bytes(layer, expert, tokens));
}

ExpertCost AnalyticCostModel::expert_cost(int layer, int expert, double tokens) const {
  check_index(layer, expert);
  const double t0 = std::max(tokens, 1.0);
  // Per-token increments of FLOPs and bytes (both are affine in the token count).
  const double f_tok = flops(layer, expert, 1.0), b_tok = bytes(layer, expert, 1.0) - bytes(layer, expert, 0.0);
  // The roofline is max(compute, memory): its slope is that of whichever bound holds at t0.
  const bool compute_bound = flops(layer, expert, t0) / hw_.peak_flops >= bytes(layer, expert, t0) / hw_.bandwidth_bytes_per_s;
  ExpertCost c;
  c.seconds.b = compute_bound ? f_tok / hw_.peak_flops : b_tok / hw_.bandwidth_bytes_per_s;
  c.seconds.a = exact_seconds(layer, expert, t0) - c.seconds.b * t0;
  c.joules.b = hw_.static_w * c.seconds.b + 1e-12 * (hw_.pj_per_flop * f_tok + hw_.pj_per_byte * b_tok);
  c.joules.a = exact_joules(layer, expert, t0) - c.joules.b * t0;
  return c;
}

}  // namespace wattmoe
