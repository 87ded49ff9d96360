#include <filesystem>

#include "core/error.h"
#include "text/tokenizer.h"

namespace wattmoe {

std::unique_ptr<Tokenizer> model_tokenizer(const std::string& model_dir, const std::string& spec, int model_vocab) {
  std::string s = spec;
  if (s.empty())
    s = std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json") ? model_dir + "/tokenizer.json"
                                                                                      : "bytes";
  std::unique_ptr<Tokenizer> tok = make_tokenizer(s);
  WATTMOE_REQUIRE(tok->vocab_size() <= model_vocab, "{}: tokenizer vocabulary ({}) is larger than the model's ({})", s,
                  tok->vocab_size(), model_vocab);
  return tok;
}

}  // namespace wattmoe
