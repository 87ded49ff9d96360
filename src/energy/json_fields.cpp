#include "energy/json_fields.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe {

namespace {
std::string type_of(const Json& v) {
  if (v.is_string()) return fmt::format("string \"{}\"", v.get<std::string>());
  return fmt::format("{} {}", v.type_name(), v.dump());
}
}  // namespace

Json parse_json_file(const std::string& path, const std::string& what) {
  try {
    return read_json_file(path);
  } catch (const Error& e) {
    fail("{}: {}", what, e.what());  // io's message names the file and the byte of a syntax error
  }
}

const Json& json_member(const Json& obj, const JsonWhere& w, const std::string& key) {
  WATTMOE_REQUIRE(obj.is_object(), "{}: expected an object, got {}", w.str(), type_of(obj));
  auto it = obj.find(key);
  WATTMOE_REQUIRE(it != obj.end(), "{}: missing field", w.key(key).str());
  return *it;
}

double json_number(const Json& obj, const JsonWhere& w, const std::string& key, std::optional<double> def,
                   std::optional<double> min) {
  WATTMOE_REQUIRE(obj.is_object(), "{}: expected an object, got {}", w.str(), type_of(obj));
  auto it = obj.find(key);
  if (it == obj.end()) {
    WATTMOE_REQUIRE(def.has_value(), "{}: missing field", w.key(key).str());
    return *def;
  }
  WATTMOE_REQUIRE(it->is_number(), "{}: expected a number, got {}", w.key(key).str(), type_of(*it));
  double v = it->get<double>();
  WATTMOE_REQUIRE(std::isfinite(v), "{}: expected a finite number, got {}", w.key(key).str(), v);
  if (min) WATTMOE_REQUIRE(v >= *min, "{}: expected a number >= {}, got {}", w.key(key).str(), *min, v);
  return v;
}

int64_t json_int(const Json& obj, const JsonWhere& w, const std::string& key, std::optional<int64_t> def,
                 std::optional<int64_t> min) {
  WATTMOE_REQUIRE(obj.is_object(), "{}: expected an object, got {}", w.str(), type_of(obj));
  auto it = obj.find(key);
  if (it == obj.end()) {
    WATTMOE_REQUIRE(def.has_value(), "{}: missing field", w.key(key).str());
    return *def;
  }
  WATTMOE_REQUIRE(it->is_number_integer(), "{}: expected an integer, got {}", w.key(key).str(), type_of(*it));
  int64_t v = it->is_number_unsigned() ? int64_t(it->get<uint64_t>()) : it->get<int64_t>();
  if (min) WATTMOE_REQUIRE(v >= *min, "{}: expected an integer >= {}, got {}", w.key(key).str(), *min, v);
  return v;
}

uint64_t json_uint(const Json& obj, const JsonWhere& w, const std::string& key) {
  const Json& v = json_member(obj, w, key);
  WATTMOE_REQUIRE(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
                  "{}: expected an integer >= 0, got {}", w.key(key).str(), type_of(v));
  return v.get<uint64_t>();
}

const Json& json_array(const Json& obj, const JsonWhere& w, const std::string& key) {
  const Json& v = json_member(obj, w, key);
  WATTMOE_REQUIRE(v.is_array(), "{}: expected an array, got {}", w.key(key).str(), type_of(v));
  return v;
}

void json_no_unknown_keys(const Json& obj, const JsonWhere& w, std::initializer_list<const char*> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += list.empty() ? a : std::string(", ") + a;
      fail("{}: unknown field (expected one of: {})", w.key(it.key()).str(), list);
    }
  }
}

}  // namespace wattmoe
