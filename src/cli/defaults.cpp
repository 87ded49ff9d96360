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

std::unique_ptr<Tokenizer> model_tokenizer(const std::string& model_dir, const std::string& spec, int model_vocab) {
  std::string s = spec;
  if (s.empty()) s = fs::exists(fs::path(model_dir) / "tokenizer.json") ? model_dir + "/tokenizer.json" : "bytes";
  std::unique_ptr<Tokenizer> tok = make_tokenizer(s);
  WATTMOE_REQUIRE(tok->vocab_size() <= model_vocab, "{}: tokenizer vocabulary ({}) is larger than the model's ({})", s,
                  tok->vocab_size(), model_vocab);
  return tok;
}

}  // namespace wattmoe::cli
