// A token stream: a text file read whole and tokenized once — what evaluation, streaming runs and training read.
// text/ owns it (not train/), so eval/ and adapt/ read text without importing the trainer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace wattmoe {

struct TokenStream {
  std::string path;
  std::vector<int32_t> tokens;
  int64_t bytes = 0;  // UTF-8 bytes of the text, for bits per byte
};

// Error naming the file when it is missing, unreadable or holds fewer than min_tokens tokens.
TokenStream load_token_stream(const std::string& path, const Tokenizer& tok, int64_t min_tokens);
// The same for a text in memory (the Python package's model.eval("…")); `name` stands for the file in errors.
TokenStream make_token_stream(const std::string& text, const Tokenizer& tok, int64_t min_tokens, const std::string& name);

}  // namespace wattmoe
