// JSON files: read with errors that name the file and the position of a syntax error. Every JSON text we read goes
// through parse_json (files through read_json_file), which refuses nesting deeper than kMaxJsonDepth before parsing:
// code that walks a parsed document recursively (tokenizer components, error messages) then has a bounded depth.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wattmoe {

using Json = nlohmann::json;

// serde_json's recursion limit, so every file that Hugging Face's readers (tokenizers, safetensors) accept passes.
inline constexpr int kMaxJsonDepth = 128;
// Error "WHAT: JSON nested more than 128 levels deep (at byte N)" when arrays/objects nest deeper (brackets inside
// strings do not count). A linear scan, no recursion.
void check_json_depth(std::string_view text, const std::string& what);
// check_json_depth, then parse; a syntax error is "WHAT: malformed JSON: ... (byte N)".
Json parse_json(std::string_view text, const std::string& what);
Json read_json_file(const std::string& path);
void write_json_file(const std::string& path, const Json& j, int indent = 2);  // atomic (temp + rename)
std::string read_text_file(const std::string& path);  // Error naming the file if unreadable
bool file_exists(const std::string& path);  // a regular file (symlinks followed); false for directories

}  // namespace wattmoe
