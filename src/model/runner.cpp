#include "model/runner.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "model/runner_impl.h"

namespace wattmoe {

void check_slot_rows(const int32_t* slots, int n, size_t n_slots) {
  WATTMOE_REQUIRE(n >= 1, "forward_slots needs at least one slot, got {}", n);
  std::vector<char> seen(n_slots, 0);
  for (int r = 0; r < n; ++r) {
    const int slot = slots[r];
    WATTMOE_REQUIRE(slot >= 0 && size_t(slot) < n_slots, "KV cache slot {} does not exist ({} slots)", slot, n_slots);
    WATTMOE_REQUIRE(!seen[size_t(slot)], "forward_slots: slot {} appears twice", slot);
    seen[size_t(slot)] = 1;
  }
}

double Runner::adapt_optimizer_step(double) {
  fail("adapt_optimizer_step: this runner has no optimizer of its own (adapt_optimizer_begin returned false)");
}

void Runner::adapt_optimizer_reset() {
  fail("adapt_optimizer_reset: this runner has no optimizer of its own (adapt_optimizer_begin returned false)");
}

void Runner::keep_param_ranges(int, const std::vector<ParamRange>&) {
  fail("keep_param_ranges: this runner keeps no weight sets of its own (adapt_optimizer_begin returned false)");
}

void Runner::load_param_ranges(int, const std::vector<ParamRange>&) {
  fail("load_param_ranges: this runner keeps no weight sets of its own (adapt_optimizer_begin returned false)");
}

void Runner::set_expert_precision(ops::ExpertPrecision p, const float* full) {
  if (p == expert_precision()) return;
  std::vector<float> now(size_t(layout().total()));
  get_params(now.data());
  for (const ParamSpec& s : layout().specs())
    if (s.kind == ParamKind::Expert) std::copy(full + s.offset, full + s.offset + s.numel, now.begin() + s.offset);
  set_expert_tier(p);
  set_params(now.data());
}

void Runner::set_expert_tier(ops::ExpertPrecision p) {
  fail("the {} runner cannot switch its routed experts to {} at run time (the CPU and GPU runners can)",
       info().device, ops::expert_precision_name(p));
}

void Runner::get_param_ranges(float* host, const std::vector<ParamRange>& ranges) const {
  std::vector<float> all(size_t(layout().total()));
  get_params(all.data());
  for (const ParamRange& r : ranges) std::copy(all.begin() + r.offset, all.begin() + r.offset + r.numel, host + r.offset);
}

void check_runner_options(const RunnerOptions& o) {
  WATTMOE_REQUIRE(o.device == "cpu" || o.device == "cuda", "--device {}: expected cpu or cuda", o.device);
  const bool cuda = o.device == "cuda";
  WATTMOE_REQUIRE(o.precision == "fp32" || o.precision == "bf16", "--precision {}: expected fp32 or bf16", o.precision);
  WATTMOE_REQUIRE(cuda || o.precision == "fp32", "--precision bf16 needs --device cuda");
  WATTMOE_REQUIRE(o.moe_kernels == "auto" || o.moe_kernels == "fused" || o.moe_kernels == "host",
                  "--moe-kernels {}: expected auto, fused or host", o.moe_kernels);
  WATTMOE_REQUIRE(cuda || o.moe_kernels != "fused", "--moe-kernels fused needs --device cuda");
  ops::parse_expert_precision(o.expert_precision);  // throws "--expert-precision X: expected bf16, fp8 or int8"
  if (!cuda) return;
#if WATTMOE_WITH_CUDA
  WATTMOE_REQUIRE(cuda_device_visible(),
                  "--device cuda: no CUDA device is visible (no GPU or driver here, or CUDA_VISIBLE_DEVICES hides "
                  "it); use --device cpu");
#else
  fail("--device cuda: this wattmoe was built without CUDA (configure with -DWATTMOE_CUDA=ON and rebuild)");
#endif
}

std::unique_ptr<Runner> make_runner(const ModelConfig& c, const RunnerOptions& o) {
  check_runner_options(o);
  if (o.device == "cpu") return make_cpu_runner(c, ops::parse_expert_precision(o.expert_precision));
#if WATTMOE_WITH_CUDA
  return make_cuda_runner(c, o);
#else
  fail("--device cuda: this wattmoe was built without CUDA");
#endif
}

RunnerFactory runner_factory(const RunnerOptions& o) {
  return [o](const ModelConfig& c) { return make_runner(c, o); };
}

bool choose_moe_kernels(const std::string& moe_kernels, const std::string& why_not) {
  if (moe_kernels == "host") {
    log_info("MoE layers: host routing (--moe-kernels host)");
    return false;
  }
  WATTMOE_REQUIRE(moe_kernels != "fused" || why_not.empty(), "--moe-kernels fused: {}", why_not);
  if (why_not.empty()) {
    log_info("MoE layers: fused kernels (--moe-kernels {})", moe_kernels);
    return true;
  }
  log_info("MoE layers: host routing (--moe-kernels auto: {})", why_not);
  return false;
}

}  // namespace wattmoe
