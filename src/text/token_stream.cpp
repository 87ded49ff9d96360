#include "text/token_stream.h"

#include <filesystem>

#include "core/error.h"
#include "io/json.h"

namespace wattmoe {

TokenStream load_token_stream(const std::string& path, const Tokenizer& tok, int64_t min_tokens) {
  TokenStream s;
  s.path = path;
  std::error_code ec;
  WATTMOE_REQUIRE(std::filesystem::exists(path, ec), "{}: corpus file not found (build corpora with `wattmoe data "
                  "build`)", path);
  const std::string text = read_text_file(path);
  WATTMOE_REQUIRE(!text.empty(), "{}: corpus file is empty", path);
  s.bytes = int64_t(text.size());
  s.tokens = tok.encode(text);
  WATTMOE_REQUIRE(int64_t(s.tokens.size()) >= min_tokens, "{}: corpus has {} tokens, need at least {}", path,
                  s.tokens.size(), min_tokens);
  return s;
}

}  // namespace wattmoe
