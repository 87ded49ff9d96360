// Validated reads of JSON fields for energy/ files (sim parameters, cost tables, traces). Every error names
// the file and the field path ("costs.json: layers[2].experts[5].b_j: expected a finite number >= 0, got -1").
#pragma once
#include <optional>
#include <string>

#include "io/json.h"

namespace wattmoe {

// Where a value sits: the file and the path inside it.
struct JsonWhere {
  std::string file, path;
  JsonWhere key(const std::string& k) const { return {file, path.empty() ? k : path + "." + k}; }
  JsonWhere index(size_t i) const { return {file, path + "[" + std::to_string(i) + "]"}; }
  std::string str() const { return path.empty() ? file : file + ": " + path; }
};

// Parses a whole file; Error naming the file (and byte offset of a syntax error).
Json parse_json_file(const std::string& path, const std::string& what);

const Json& json_member(const Json& obj, const JsonWhere& w, const std::string& key);  // Error if missing
// A finite number (>= min if given); `def` when the key is absent (Error if absent and no default).
double json_number(const Json& obj, const JsonWhere& w, const std::string& key, std::optional<double> def = {},
                   std::optional<double> min = {});
int64_t json_int(const Json& obj, const JsonWhere& w, const std::string& key, std::optional<int64_t> def = {},
                 std::optional<int64_t> min = {});
uint64_t json_uint(const Json& obj, const JsonWhere& w, const std::string& key);
const Json& json_array(const Json& obj, const JsonWhere& w, const std::string& key);
// Error naming the first key of obj not in `allowed` (catches typos in hand-written files).
void json_no_unknown_keys(const Json& obj, const JsonWhere& w, std::initializer_list<const char*> allowed);

}  // namespace wattmoe
