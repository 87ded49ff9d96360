#include "cli/defaults.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace wattmoe::cli {

namespace fs = std::filesystem;

std::string default_model_dir() {
  if (const char* env = std::getenv("WATTMOE_MODEL")) return env;
  // The binary lives in <repo>/build*/; look upwards from it for models/kjv-small.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path p = ec ? fs::current_path() : exe.parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (fs::exists(p / "models/kjv-small/config.json")) return (p / "models/kjv-small").string();
  return "models/kjv-small";
}

}  // namespace wattmoe::cli
