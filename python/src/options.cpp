// Python option dicts -> the library's option structs, the one place the package maps them. Keys are the command
// line's flag names without the dashes ('-' written '_'): top_p for --top-p, power_budget for --power-budget; the
// negated switches are plain booleans (thermal_guard=False for --no-thermal-guard); test-time training options drop
// their --ttt-/--lora- prefix inside the ttt dict only where the flag has it (lr for --ttt-lr, lora_rank stays).
// Defaults are the structs' own (the CLI's), so an empty dict means the CLI with no flags.
#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nanobind/stl/string.h>

#include "bindings.h"
#include "core/error.h"

namespace wattmoe::py {

namespace {

std::string py_repr(nb::handle h) { return nb::cast<std::string>(nb::repr(h)); }

// One option's value, checked as the CLI checks a flag: the right type, a finite number (infinity only where the
// option means "no limit"), an integer (a count or size) never negative. Ranges are the library's to check, so its
// errors carry the same message as the CLI's.
struct Check {
  bool inf_ok = false;
};

template <class T>
T value_of(const std::string& key, nb::handle h, Check c) {
  if constexpr (std::is_same_v<T, bool>) {
    WATTMOE_REQUIRE(PyBool_Check(h.ptr()), "{}: expected True or False, got {}", key, py_repr(h));
    return h.ptr() == Py_True;
  } else if constexpr (std::is_arithmetic_v<T>) {
    const bool number = !PyBool_Check(h.ptr()) && (PyLong_Check(h.ptr()) || (std::is_floating_point_v<T> && PyFloat_Check(h.ptr())));
    WATTMOE_REQUIRE(number, "{}: expected {}, got {}", key, std::is_floating_point_v<T> ? "a number" : "an integer", py_repr(h));
    if constexpr (std::is_floating_point_v<T>) {
      const double v = nb::cast<double>(h);
      WATTMOE_REQUIRE(!std::isnan(v) && (c.inf_ok || !std::isinf(v)), "{}: expected a number, got '{}'", key, py_repr(h));
      return T(v);
    } else {
      long long v = 0;
      WATTMOE_REQUIRE(nb::try_cast<long long>(h, v) && v >= 0 &&
                          v >= (long long)std::numeric_limits<T>::min() && (unsigned long long)v <= (unsigned long long)std::numeric_limits<T>::max(),
                      "{}: expected an integer >= 0 that fits, got {}", key, py_repr(h));
      return T(v);
    }
  } else {
    static_assert(std::is_same_v<T, std::string>);
    if (PyUnicode_Check(h.ptr())) return nb::cast<std::string>(h);
    // A path (pathlib.Path, os.PathLike) for the options that name files.
    nb::object p = nb::steal(PyOS_FSPath(h.ptr()));
    if (!p.is_valid()) PyErr_Clear();
    WATTMOE_REQUIRE(p.is_valid() && PyUnicode_Check(p.ptr()), "{}: expected a string, got {}", key, py_repr(h));
    return nb::cast<std::string>(p);
  }
}

// The table of one dict's keys: name -> where its value goes.
class Fields {
 public:
  explicit Fields(std::string what) : what_(std::move(what)) {}
  template <class T>
  Fields& add(const std::string& name, T& field, Check c = {}) {
    list_.emplace_back(name, [&field, name, c](nb::handle h) { field = value_of<T>(name, h, c); });
    return *this;
  }
  void apply(const nb::dict& d) const {
    for (auto [k, v] : d) {
      WATTMOE_REQUIRE(PyUnicode_Check(k.ptr()), "{} options: keys are strings, got {}", what_, py_repr(k));
      const std::string key = nb::cast<std::string>(k);
      const auto it = std::find_if(list_.begin(), list_.end(), [&](const auto& f) { return f.first == key; });
      if (it == list_.end()) {
        std::string known;
        for (const auto& f : list_) known += (known.empty() ? "" : ", ") + f.first;
        fail("unknown {} option '{}' (expected one of: {})", what_, key, known);
      }
      it->second(v);
    }
  }

 private:
  std::string what_;
  std::vector<std::pair<std::string, std::function<void(nb::handle)>>> list_;
};

}  // namespace

RoutingOptions routing_options(const nb::dict& d) {
  RoutingOptions r;
  Fields("routing")
      .add("policy", r.policy).add("lambda", r.lambda).add("top_p", r.top_p).add("beta", r.beta)
      .add("k_min", r.k_min).add("k_max", r.k_max).add("budget_j", r.budget_j, {.inf_ok = true})
      .add("mask", r.mask).add("reuse_min_tokens", r.reuse_min_tokens).add("costs", r.costs)
      .add("expert_shape", r.expert_shape)
      .apply(d);
  return r;
}

RunnerOptions runner_options(const nb::dict& d) {
  RunnerOptions o;
  Fields("device").add("device", o.device).add("precision", o.precision).add("moe_kernels", o.moe_kernels)
      .add("gpu", o.gpu).apply(d);
  return o;
}

EvalWindows eval_windows(const nb::dict& d) {
  EvalWindows w;
  Fields("eval").add("seq", w.seq).add("batch", w.batch).add("max_tokens", w.max_tokens).add("stride", w.stride)
      .apply(d);
  return w;
}

void apply_run_options(const nb::dict& d, const nb::object& ttt, RunConfig& c) {
  RunPlantOptions& p = c.plant;
  BudgetOptions& b = c.budget;
  Fields("run")
      .add("seq", c.stream.seq).add("max_tokens", c.stream.max_tokens).add("compare_windows", c.stream.compare_windows)
      .add("log", c.log).add("power_budget", b.power_w).add("energy_budget", b.energy_j_per_token)
      .add("budget_schedule", b.schedule).add("control_policy", b.control_policy)
      .add("thermal_guard", b.thermal_guard).add("ladder", b.ladder)
      .add("plant", p.name).add("sim_params", p.sim_params).add("sim_streams", p.streams)
      .add("step_period_s", p.period_s).add("idle_s", p.idle_s).add("ambient_c", p.ambient_c)
      .apply(d);
  TttOptions& t = c.ttt;
  t.enabled = !ttt.is_none();
  if (!t.enabled) return;
  WATTMOE_REQUIRE(nb::isinstance<nb::dict>(ttt), "ttt: expected None or a dict of test-time training options, got {}",
                  py_repr(ttt));
  AdapterConfig& a = t.adapter;
  AdaptOptimConfig& o = a.optim;
  Fields("ttt")
      .add("groups", t.groups).add("lora_rank", a.lora_rank).add("optimizer", t.optimizer).add("lr", o.lr)
      .add("lr_router", o.lr_router).add("lr_norms", o.lr_norms).add("lr_lora", o.lr_lora)
      .add("lr_decay", o.lr_decay_steps).add("lr_min_ratio", o.lr_min_ratio).add("beta1", o.beta1)
      .add("beta2", o.beta2).add("clip", o.clip).add("lora_seed", a.lora_seed).add("lora_scale", a.lora_scale)
      .add("steps", a.steps_per_window).add("replay", a.replay).add("nll", a.objective.nll)
      .add("entropy", a.objective.entropy).add("energy", a.objective.energy).add("entropy_gate", t.entropy_gate)
      .add("router_entropy", a.objective.router_entropy).add("lb", a.objective.load_balance)
      .add("anchor", a.objective.anchor).add("trigger", t.triggers).add("every", t.every)
      .add("power_above", t.power_above_w).add("complexity", t.complexity)
      .add("entropy_floor", a.guard.entropy_floor).add("max_expert_share", a.guard.max_expert_share)
      .add("loss_margin", a.guard.loss_margin).add("source_check", a.source_guard.check_every)
      .add("source_margin", a.source_guard.margin).add("backoff", a.source_guard.backoff)
      .add("source_probation", a.source_guard.probation).add("teacher", a.teacher).add("episodic", a.episodic)
      .add("reset_on_drift", a.reset_on_drift)
      .apply(nb::borrow<nb::dict>(ttt));
}

void apply_generate_options(const nb::dict& d, EngineConfig& c) {
  BudgetOptions& b = c.budget;
  ServeEnergyOptions& e = c.energy;
  Fields("generate")
      .add("power_budget", b.power_w).add("energy_budget", b.energy_j_per_token)
      .add("control_policy", b.control_policy).add("thermal_guard", b.thermal_guard).add("ladder", b.ladder)
      .add("context", c.limits.context).add("plant", e.plant).add("sim_params", e.sim_params)
      .add("ambient_c", e.ambient_c).add("sim_period_s", e.sim_period_s)
      .add("control_period_s", e.control_period_s)
      .apply(d);
}

nb::object to_python(const Json& j) { return nb::module_::import_("json").attr("loads")(j.dump()); }

}  // namespace wattmoe::py
