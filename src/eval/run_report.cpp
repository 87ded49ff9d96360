#include "eval/run_report.h"

#include <fmt/format.h>

namespace wattmoe {

std::string thousands(int64_t n) {
  std::string d = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return n < 0 ? "-" + out : out;
}

namespace {

double num(const Json& j, const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0; }

std::string plant_mean(const Json& p) {
  return fmt::format("mean {:.1f} W, {:.4g} J/token", num(p, "mean_power_w"), num(p, "joules_per_token"));
}

}  // namespace

std::string run_verdict(const Json& s) {
  const bool ttt = s.contains("ttt");
  std::string v;
  if (s.contains("budget")) {
    v = fmt::format("{}, bits/byte {:.4f}{}", s["budget"]["verdict"].get<std::string>(), num(s, "bits_per_byte"),
                    ttt ? " with TTT" : "");
  } else {
    v = fmt::format("bits/byte {:.4f} on {} tokens, {:.2f} experts/token{}, no budget ({}: {})", num(s, "bits_per_byte"),
                    thousands(int64_t(num(s, "tokens"))), num(s, "experts_per_token"), ttt ? " with TTT" : "",
                    s["measured"].get<bool>() ? "measured" : "simulated", plant_mean(s["plant"]));
  }
  if (s.contains("interrupted"))
    v += fmt::format(" (interrupted by {} after {} windows)", s["interrupted"].get<std::string>(),
                     int64_t(num(s, "windows")));
  if (s.contains("stopped")) v += fmt::format(" (stopped after {} windows)", int64_t(num(s, "windows")));
  return v;
}

std::string run_report_text(const Json& s) {
  std::string t = run_verdict(s) + "\n";
  const std::string routing =
      s.contains("control") ? fmt::format("the controller moving {}", s["control"]["policy"].get<std::string>())
                            : fmt::format("{} routing", s["routing"]["policy"].get<std::string>());
  t += fmt::format("  scored {} tokens of {} in {} windows: bits/byte {:.4f}, {:.3f} experts/token ({})\n",
                   thousands(int64_t(num(s, "tokens"))), s["data"].get<std::string>(), int64_t(num(s, "windows")),
                   num(s, "bits_per_byte"), num(s, "experts_per_token"), routing);
  if (s.contains("ttt"))
    t += fmt::format("  TTT: {} windows adapted ({}), {} resets, adaptation took {:.2f}x the inference time\n",
                     int64_t(num(s, "adapted_windows")), s["ttt"]["groups"].get<std::string>(),
                     int64_t(num(s, "resets")), num(s, "adapt_infer_ratio"));
  const Json& p = s["plant"];
  t += fmt::format("  plant: {}: {}, max {:.1f} °C, {} throttled windows\n", p["label"].get<std::string>(),
                   plant_mean(p), num(p, "max_temp_c"), int64_t(num(p, "throttled_windows")));
  if (s.contains("budget") && s["budget"].contains("floor")) {
    const Json& b = s["budget"];
    t += fmt::format("  the plant's floor (cheapest rung): {:.4g} {}\n", num(b, "floor"), b["unit"].get<std::string>());
  }
  if (s.contains("stopped")) t += fmt::format("  stopped: {}\n", s["stopped"].get<std::string>());
  return t;
}

}  // namespace wattmoe
