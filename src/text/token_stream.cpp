#include "text/token_stream.h"

#include <filesystem>

#include "core/error.h"
#include "io/json.h"

namespace wattmoe {

TokenStream load_token_stream(const std::string& path, const Tokenizer& tok, int64_t min_tokens) {
  std::error_code ec;
  WATTMOE_REQUIRE(std::filesystem::exists(path, ec), "{}: corpus file not found (build corpora with `wattmoe data "
                  "build`)", path);
  return make_token_stream(read_text_file(path), tok, min_tokens, path);
}

TokenStream make_token_stream(const std::string& text, const Tokenizer& tok, int64_t min_tokens, const std::string& name) {
  TokenStream s;
  s.path = name;
  WATTMOE_REQUIRE(!text.empty(), "{}: corpus file is empty", name);
  s.bytes = int64_t(text.size());
  s.tokens = tok.encode(text);
  WATTMOE_REQUIRE(int64_t(s.tokens.size()) >= min_tokens, "{}: corpus has {} tokens, need at least {}", name,
                  s.tokens.size(), min_tokens);
  return s;
}

}  // namespace wattmoe
