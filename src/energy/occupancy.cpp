#include "energy/occupancy.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>

#include <cxxabi.h>

#include "core/error.h"

namespace wattmoe {

namespace {
int64_t div_up(int64_t x, int64_t y) { return (x + y - 1) / y; }
int64_t round_up(int64_t x, int64_t y) { return div_up(x, y) * y; }
}  // namespace

void validate(const SmLimits& s) {
  WATTMOE_REQUIRE(s.sm_count >= 1, "SM limits: sm_count {}: expected >= 1", s.sm_count);
  WATTMOE_REQUIRE(s.warp_size >= 1, "SM limits: warp_size {}: expected >= 1", s.warp_size);
  WATTMOE_REQUIRE(s.max_threads_per_sm >= s.warp_size, "SM limits: max_threads_per_sm {}: expected >= a warp ({})",
                  s.max_threads_per_sm, s.warp_size);
  WATTMOE_REQUIRE(s.max_threads_per_block >= 1, "SM limits: max_threads_per_block {}: expected >= 1",
                  s.max_threads_per_block);
  WATTMOE_REQUIRE(s.max_blocks_per_sm >= 1, "SM limits: max_blocks_per_sm {}: expected >= 1", s.max_blocks_per_sm);
  WATTMOE_REQUIRE(s.sub_partitions >= 1, "SM limits: sub_partitions {}: expected >= 1", s.sub_partitions);
  WATTMOE_REQUIRE(s.regs_per_sm >= s.sub_partitions, "SM limits: regs_per_sm {}: expected >= 1 per sub-partition",
                  s.regs_per_sm);
  WATTMOE_REQUIRE(s.regs_per_block >= 1, "SM limits: regs_per_block {}: expected >= 1", s.regs_per_block);
  WATTMOE_REQUIRE(s.max_regs_per_thread >= 1, "SM limits: max_regs_per_thread {}: expected >= 1",
                  s.max_regs_per_thread);
  WATTMOE_REQUIRE(s.reg_alloc_unit >= 1, "SM limits: reg_alloc_unit {}: expected >= 1", s.reg_alloc_unit);
  WATTMOE_REQUIRE(s.smem_per_sm >= 0 && s.smem_per_block_optin >= 0 && s.smem_reserved_per_block >= 0,
                  "SM limits: shared memory sizes must be >= 0 (per SM {}, per block {}, reserved {})", s.smem_per_sm,
                  s.smem_per_block_optin, s.smem_reserved_per_block);
  WATTMOE_REQUIRE(s.smem_alloc_unit >= 1, "SM limits: smem_alloc_unit {}: expected >= 1", s.smem_alloc_unit);
}

Occupancy theoretical_occupancy(const SmLimits& s, const KernelLaunch& k) {
  validate(s);
  WATTMOE_REQUIRE(k.threads >= 1 && k.grid >= 1, "kernel {}: grid {} x {} threads: expected at least one of each",
                  k.name, k.grid, k.threads);
  WATTMOE_REQUIRE(k.regs_per_thread >= 0 && k.static_smem >= 0 && k.dynamic_smem >= 0,
                  "kernel {}: registers {}, shared memory {} + {}: expected >= 0", k.name, k.regs_per_thread,
                  k.static_smem, k.dynamic_smem);
  Occupancy o;
  const int max_warps = s.max_threads_per_sm / s.warp_size;
  o.warps_per_block = int(div_up(k.threads, s.warp_size));

  o.limit_warps = k.threads > s.max_threads_per_block ? 0 : max_warps / o.warps_per_block;
  o.limit_blocks = s.max_blocks_per_sm;

  const int64_t regs_per_warp = round_up(int64_t(k.regs_per_thread) * s.warp_size, s.reg_alloc_unit);
  const int64_t regs_per_cta = regs_per_warp * round_up(o.warps_per_block, s.sub_partitions);
  if (k.regs_per_thread > s.max_regs_per_thread || regs_per_cta > s.regs_per_block)
    o.limit_registers = 0;
  else if (regs_per_warp == 0)
    o.limit_registers = INT_MAX;
  else
    o.limit_registers =
        int((s.regs_per_sm / s.sub_partitions / regs_per_warp) * s.sub_partitions / o.warps_per_block);

  const int64_t smem = round_up(k.static_smem + k.dynamic_smem + s.smem_reserved_per_block, s.smem_alloc_unit);
  if (k.static_smem + k.dynamic_smem + s.smem_reserved_per_block > s.smem_per_block_optin + s.smem_reserved_per_block)
    o.limit_shared = 0;
  else if (smem == 0)
    o.limit_shared = INT_MAX;
  else
    o.limit_shared = int(std::min<int64_t>(INT_MAX, s.smem_per_sm / smem));

  // The smallest limit wins; ties go to the first in this order.
  const std::pair<int, const char*> limits[] = {{o.limit_warps, "warps"},
                                                {o.limit_registers, "registers"},
                                                {o.limit_shared, "shared memory"},
                                                {o.limit_blocks, "blocks"}};
  o.blocks_per_sm = INT_MAX;
  for (const auto& [n, what] : limits)
    if (n < o.blocks_per_sm) {
      o.blocks_per_sm = n;
      o.limiter = what;
    }
  o.theoretical = double(o.blocks_per_sm) * o.warps_per_block / max_warps;
  if (o.blocks_per_sm > 0) {
    const double wave = double(o.blocks_per_sm) * s.sm_count;
    o.waves = double(k.grid) / wave;
    o.resident = std::min<double>(double(k.grid), wave) * o.warps_per_block / (double(s.sm_count) * max_warps);
  }
  return o;
}

LaunchSummary summarise_launches(const SmLimits& s, const std::vector<KernelLaunch>& records, int calls) {
  WATTMOE_REQUIRE(calls >= 1, "launch summary: calls {}: expected >= 1", calls);
  WATTMOE_REQUIRE(!records.empty(), "launch summary: no kernel launches were recorded");
  LaunchSummary r;
  double total = 0;
  for (const KernelLaunch& k : records) total += std::max(0.0, k.seconds);
  // Kernels too short for the tracer's clock (all zero) weigh equally.
  auto weight = [&](const KernelLaunch& k) {
    return total > 0 ? std::max(0.0, k.seconds) / total : 1.0 / double(records.size());
  };
  using Shape = std::tuple<std::string, int64_t, int, int, int64_t, int64_t>;
  std::map<Shape, std::pair<double, const KernelLaunch*>> shapes;
  for (const KernelLaunch& k : records) {
    const Occupancy o = theoretical_occupancy(s, k);
    const double w = weight(k);
    r.theoretical += w * o.theoretical;
    r.resident += w * o.resident;
    r.max_regs_per_thread = std::max(r.max_regs_per_thread, k.regs_per_thread);
    r.max_smem_per_block = std::max(r.max_smem_per_block, k.static_smem + k.dynamic_smem);
    auto& [wsum, first] =
        shapes[{k.name, k.grid, k.threads, k.regs_per_thread, k.static_smem, k.dynamic_smem}];
    wsum += w;
    if (!first) first = &k;
  }
  double best = -1;
  for (const auto& [shape, v] : shapes)
    if (v.first > best) {
      best = v.first;
      r.dominant = *v.second;
    }
  r.dominant_share = best;
  r.dominant.seconds = best * total / calls;  // its GPU time per call
  r.dominant_occupancy = theoretical_occupancy(s, r.dominant);
  r.kernels_per_call = double(records.size()) / calls;
  r.kernel_seconds_per_call = total / calls;
  return r;
}

std::string kernel_base_name(const std::string& name) {
  std::string s = name;
  int status = -1;
  if (char* d = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status)) {
    if (status == 0) s = d;
    std::free(d);
  }
  // Nesting depth of <> and () at each character, to find the top-level parameter list, return type and scope.
  auto top_level = [&](size_t end, auto&& pick) {
    int depth = 0;
    for (size_t i = 0; i < end; ++i) {
      const char ch = s[i];
      if (ch == '<' || ch == '(') ++depth;
      if (ch == '>' || ch == ')') --depth;
      if (depth == 0) pick(i);
    }
  };
  // The parameter list: the last top-level "(...)" when the name ends with ')'.
  size_t end = s.size();
  if (!s.empty() && s.back() == ')') {
    size_t open = std::string::npos;
    int depth = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '(' && depth++ == 0) open = i;
      if (s[i] == '<') ++depth;
      if (s[i] == ')' || s[i] == '>') --depth;
    }
    if (open != std::string::npos && open > 0) end = open;
  }
  size_t begin = 0;
  top_level(end, [&](size_t i) {
    if (s[i] == ' ') begin = i + 1;                                   // after the return type
    if (s[i] == ':' && i + 1 < end && s[i + 1] == ':') begin = i + 2;  // after a scope
  });
  return s.substr(begin, end - begin);
}

}  // namespace wattmoe
