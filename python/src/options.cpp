// Python option dicts -> the library's option structs. Which keys there are comes from the option tables the command
// line registers its flags from (eval/option_table.h, serve/engine_options.h): a key is the flag's name without the
// dashes, '-' written '_' (route_top_p for --route-top-p, power_budget_w for --power-budget-w), an old flag name's key
// still accepted (top_p, power_budget, energy_budget); the negated switches are plain booleans (thermal_guard=False
// for --no-thermal-guard); test-time training options drop their --ttt- prefix inside the ttt dict (lr for --ttt-lr,
// lora_rank stays). This file keeps the value checks (value_of) and the few device keys (runner_options: gpu has no
// flag, and the CLI's --device help differs per command). Defaults are the structs' own (the CLI's), so an empty
// dict means the CLI with no flags.
#include <algorithm>
#include <cmath>
#include <limits>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nanobind/stl/string.h>

#include "bindings.h"
#include "core/error.h"
#include "eval/option_table.h"
#include "serve/engine_options.h"

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

// One dict's keys: name -> where its value goes. Filled by visiting an option table (eval/option_table.h) — each
// option's key (option_key: the flag without dashes, '-' written '_', inside the ttt dict without "ttt-") and, for an
// option with an old flag name, that name's key too (top_p for --top-p), which sets the same field; giving both is an
// error, as on the command line. add() is for the few keys that are Python's alone.
class Fields {
 public:
  Fields(std::string what, std::string_view prefix = {}) : what_(std::move(what)), prefix_(prefix) {}
  template <class T>
  void operator()(const OptionInfo& i, T& field) {
    const std::string key = option_key(i.flag, i.negated, prefix_);
    add(key, field, {.inf_ok = i.inf_ok});
    if (!i.alias.empty()) add(option_key(i.alias, false, prefix_), field, {.inf_ok = i.inf_ok}, key);
  }
  // now: for an old name, the key that replaced it.
  template <class T>
  Fields& add(const std::string& name, T& field, Check c = {}, std::string now = {}) {
    list_.push_back({name, std::move(now), [&field, name, c](nb::handle h) { field = value_of<T>(name, h, c); }});
    return *this;
  }
  void apply(const nb::dict& d) const {
    for (auto [k, v] : d) {
      WATTMOE_REQUIRE(PyUnicode_Check(k.ptr()), "{} options: keys are strings, got {}", what_, py_repr(k));
      const std::string key = nb::cast<std::string>(k);
      const auto it = std::find_if(list_.begin(), list_.end(), [&](const Field& f) { return f.name == key; });
      if (it == list_.end()) {
        std::string known;
        for (const Field& f : list_)
          if (f.now.empty()) known += (known.empty() ? "" : ", ") + f.name;
        fail("unknown {} option '{}' (expected one of: {})", what_, key, known);
      }
      if (!it->now.empty() && d.contains(it->now.c_str()))
        fail("{} is the old name of {}: give one of them", key, it->now);
      it->set(v);
    }
  }

 private:
  struct Field {
    std::string name, now;  // now: empty, or the key an old name stands for
    std::function<void(nb::handle)> set;
  };
  std::string what_;
  std::string_view prefix_;
  std::vector<Field> list_;
};

}  // namespace

RoutingOptions routing_options(const nb::dict& d) {
  RoutingOptions r;
  Fields f("routing");
  visit_routing_options(r, f);
  f.apply(d);
  return r;
}

RunnerOptions runner_options(const nb::dict& d) {
  RunnerOptions o;
  Fields("device").add("device", o.device).add("precision", o.precision).add("moe_kernels", o.moe_kernels)
      .add("expert_precision", o.expert_precision).add("gpu", o.gpu).apply(d);
  return o;
}

EvalWindows eval_windows(const nb::dict& d) {
  EvalWindows w;
  Fields f("eval");
  visit_eval_window_options(w, f);
  f.apply(d);
  return w;
}

void apply_run_options(const nb::dict& d, const nb::object& ttt, RunConfig& c) {
  Fields f("run");
  visit_run_options(c, f);
  f.apply(d);
  TttOptions& t = c.ttt;
  t.enabled = !ttt.is_none();
  if (!t.enabled) return;
  WATTMOE_REQUIRE(nb::isinstance<nb::dict>(ttt), "ttt: expected None or a dict of test-time training options, got {}",
                  py_repr(ttt));
  Fields tf("ttt", "ttt-");
  visit_ttt_options(t, tf);
  tf.apply(nb::borrow<nb::dict>(ttt));
}

void apply_generate_options(const nb::dict& d, EngineConfig& c) {
  Fields f("generate");
  visit_engine_options(c, f);
  f.apply(d);
}

nb::object to_python(const Json& j) { return nb::module_::import_("json").attr("loads")(j.dump()); }

}  // namespace wattmoe::py
