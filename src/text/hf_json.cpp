// Checked access to tokenizer.json fields, so that a corrupt file gives an Error naming the field, not a crash.
#include "core/error.h"
#include "text/hf_components.h"

namespace wattmoe::hf {

const Json& field(const Json& j, const char* key, const std::string& where) {
  WATTMOE_REQUIRE(j.is_object(), "{}: expected a JSON object, found {}", where, j.type_name());
  auto it = j.find(key);
  WATTMOE_REQUIRE(it != j.end(), "{}: missing field \"{}\"", where, key);
  return *it;
}

std::string str_field(const Json& j, const char* key, const std::string& where) {
  const Json& v = field(j, key, where);
  WATTMOE_REQUIRE(v.is_string(), "{}: field \"{}\" should be a string, found {}", where, key, v.type_name());
  return v.get<std::string>();
}

std::string opt_str_field(const Json& j, const char* key, const std::string& def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  WATTMOE_REQUIRE(it->is_string(), "{}: field \"{}\" should be a string, found {}", where, key, it->type_name());
  return it->get<std::string>();
}

bool bool_field(const Json& j, const char* key, bool def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  WATTMOE_REQUIRE(it->is_boolean(), "{}: field \"{}\" should be true or false, found {}", where, key, it->type_name());
  return it->get<bool>();
}

int64_t int_field(const Json& j, const char* key, int64_t def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  WATTMOE_REQUIRE(it->is_number_integer(), "{}: field \"{}\" should be an integer, found {}", where, key,
                  it->type_name());
  return it->get<int64_t>();
}

std::string type_of(const Json& j, const std::string& where) {
  WATTMOE_REQUIRE(j.is_object(), "{}: expected an object with a \"type\", found {}", where, j.type_name());
  return str_field(j, "type", where);
}

std::string string_pattern(const Json& pattern, const std::string& where) {
  WATTMOE_REQUIRE(pattern.is_object(), "{}: \"pattern\" should be {{\"String\": ...}}, found {}", where,
                  pattern.type_name());
  if (pattern.contains("Regex"))
    fail("{}: a Regex pattern ({}) is not supported here; only {{\"String\": ...}} patterns are", where,
         pattern["Regex"].dump());
  return str_field(pattern, "String", where);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  for (size_t k; (k = s.find(from, i)) != std::string::npos; i = k + from.size()) {
    out.append(s, i, k - i);
    out += to;
  }
  if (i == 0) return;
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

}  // namespace wattmoe::hf
