#include "energy/trace.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "energy/json_fields.h"
#include "io/files.h"

namespace wattmoe {

namespace {

// One table drives JSON, CSV, reading and writing, so the formats cannot drift apart.
struct Field {
  const char* name;
  double Sample::*d = nullptr;
  std::optional<uint64_t> Sample::*u = nullptr;
};
const Field kFields[] = {
    {"time_s", &Sample::time_s},
    {"power_w", &Sample::power_w},
    {"power_avg_w", &Sample::power_avg_w},
    {"energy_j", &Sample::energy_j},
    {"gpu_temp_c", &Sample::gpu_temp_c},
    {"mem_temp_c", &Sample::mem_temp_c},
    {"sm_clock_mhz", &Sample::sm_clock_mhz},
    {"mem_clock_mhz", &Sample::mem_clock_mhz},
    {"clock_event_reasons", nullptr, &Sample::clock_event_reasons},
    {"mem_used_bytes", nullptr, &Sample::mem_used_bytes},
    {"mem_total_bytes", nullptr, &Sample::mem_total_bytes},
    {"power_limit_w", &Sample::power_limit_w},
    {"thermal_margin_c", &Sample::thermal_margin_c},
};

const Field* find_field(std::string_view name) {
  for (const Field& f : kFields)
    if (name == f.name) return &f;
  return nullptr;
}

std::string field_list() {
  std::string s;
  for (const Field& f : kFields) s += s.empty() ? f.name : std::string(", ") + f.name;
  return s;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells(1);
  for (char c : line) {
    if (c == ',') cells.emplace_back();
    else if (c != '\r') cells.back() += c;
  }
  return cells;
}

Sample sample_from_csv(const std::vector<const Field*>& cols, const std::string& line, const std::string& where) {
  auto cells = split_csv(line);
  WATTMOE_REQUIRE(cells.size() == cols.size(), "{}: expected {} comma-separated cells (as in the header), got {}",
                  where, cols.size(), cells.size());
  Sample s;
  for (size_t i = 0; i < cols.size(); ++i) {
    const std::string& c = cells[i];
    if (c.empty()) continue;
    const char* b = c.data();
    const char* e = b + c.size();
    if (cols[i]->d) {
      double v = 0;
      auto r = std::from_chars(b, e, v);
      WATTMOE_REQUIRE(r.ec == std::errc() && r.ptr == e && std::isfinite(v), "{}: {}: expected a finite number, got \"{}\"",
                      where, cols[i]->name, c);
      s.*(cols[i]->d) = v;
    } else {
      uint64_t v = 0;
      auto r = std::from_chars(b, e, v);
      WATTMOE_REQUIRE(r.ec == std::errc() && r.ptr == e, "{}: {}: expected an integer >= 0, got \"{}\"", where,
                      cols[i]->name, c);
      s.*(cols[i]->u) = v;
    }
  }
  WATTMOE_REQUIRE(!std::isnan(s.time_s), "{}: time_s: missing (every sample needs a time)", where);
  return s;
}

}  // namespace

Json sample_to_json(const Sample& s) {
  Json j = Json::object();
  for (const Field& f : kFields) {
    if (f.d && !std::isnan(s.*(f.d))) j[f.name] = s.*(f.d);
    if (f.u && (s.*(f.u)).has_value()) j[f.name] = *(s.*(f.u));
  }
  return j;
}

Sample sample_from_json(const Json& j, const std::string& where) {
  WATTMOE_REQUIRE(j.is_object(), "{}: expected a JSON object (one sample), got {}", where, j.type_name());
  Sample s;
  JsonWhere w{where, ""};
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Field* f = find_field(it.key());
    WATTMOE_REQUIRE(f, "{}: unknown field \"{}\" (expected one of: {})", where, it.key(), field_list());
    if (f->d) s.*(f->d) = json_number(j, w, f->name);
    else s.*(f->u) = json_uint(j, w, f->name);
  }
  WATTMOE_REQUIRE(!std::isnan(s.time_s), "{}: time_s: missing (every sample needs a time)", where);
  return s;
}

std::string sample_csv_header() {
  std::string s;
  for (const Field& f : kFields) s += s.empty() ? f.name : std::string(",") + f.name;
  return s;
}

std::string sample_to_csv(const Sample& s) {
  std::string out;
  bool first = true;
  for (const Field& f : kFields) {
    if (!first) out += ',';
    first = false;
    if (f.d && !std::isnan(s.*(f.d))) out += fmt::format("{}", s.*(f.d));  // shortest round-trip
    if (f.u && (s.*(f.u)).has_value()) out += fmt::format("{}", *(s.*(f.u)));
  }
  return out;
}

void CounterTotal::add(double e, double time_s) {
  if (std::isnan(e)) return;
  ++samples;
  if (!std::isnan(last_)) {
    const double d = counter_step(last_, e, wrap_j);
    if (!std::isnan(d)) joules += d;
    else if (backwards++ == 0) first_backwards_s = time_s;
  }
  last_ = e;
}

bool trace_path_is_csv(const std::string& path) {
  return path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0;
}

std::vector<Sample> read_trace(const std::string& path) {
  std::string text;
  try {
    text = read_text_file(path);  // never blocks on a FIFO; refuses anything but a regular file
  } catch (const Error& e) {
    fail("trace {}", e.what());
  }
  return parse_trace(text, trace_path_is_csv(path), path);
}

std::vector<Sample> parse_trace(std::string_view text, bool csv, const std::string& path) {
  std::vector<const Field*> cols;
  std::vector<Sample> out;
  std::string line;
  std::istringstream in{std::string(text)};
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    std::string where = fmt::format("{}:{}", path, lineno);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Sample s;
    if (csv) {
      if (cols.empty()) {
        for (const std::string& name : split_csv(line)) {
          const Field* f = find_field(name);
          WATTMOE_REQUIRE(f, "{}: unknown CSV column \"{}\" (expected a header of: {})", where, name, field_list());
          cols.push_back(f);
        }
        continue;
      }
      s = sample_from_csv(cols, line, where);
    } else {
      s = sample_from_json(parse_json(line, where), where);
    }
    WATTMOE_REQUIRE(out.empty() || s.time_s >= out.back().time_s,
                    "{}: time_s: {} goes backwards (previous sample at {})", where, s.time_s, out.back().time_s);
    out.push_back(s);
  }
  return out;
}

TraceWriter::TraceWriter(const std::string& path) : path_(path), csv_(trace_path_is_csv(path)) {
  f_ = std::fopen(output_path(path).c_str(), "wb");
  WATTMOE_REQUIRE(f_, "trace {}: cannot open for writing: {}", path, std::strerror(errno));
  if (csv_) std::fprintf(f_, "%s\n", sample_csv_header().c_str());
}

TraceWriter::~TraceWriter() {
  if (f_) std::fclose(f_);
}

void TraceWriter::write(const Sample& s) {
  std::string line;
  if (csv_) {
    line = sample_to_csv(s);
  } else {
    nlohmann::ordered_json j;  // fields in table order (time first), easier to read than sorted keys
    for (const Field& f : kFields) {
      if (f.d && !std::isnan(s.*(f.d))) j[f.name] = s.*(f.d);
      if (f.u && (s.*(f.u)).has_value()) j[f.name] = *(s.*(f.u));
    }
    line = j.dump();
  }
  line += '\n';
  WATTMOE_REQUIRE(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0,
                  "trace {}: write failed: {}", path_, std::strerror(errno));
}

}  // namespace wattmoe
