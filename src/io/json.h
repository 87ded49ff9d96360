// JSON files: read with errors that name the file and the position of a syntax error.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace wattmoe {

using Json = nlohmann::json;

Json read_json_file(const std::string& path);
void write_json_file(const std::string& path, const Json& j, int indent = 2);  // atomic (temp + rename)
std::string read_text_file(const std::string& path);  // Error naming the file if unreadable
bool file_exists(const std::string& path);  // a regular file (symlinks followed); false for directories

}  // namespace wattmoe
