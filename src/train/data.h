// Token streams for training and evaluation: a text file read whole and tokenized once.
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

// B windows of seq+1 tokens at offsets drawn from a generator seeded by (seed, step, micro): the same arguments
// always give the same batch, so a resumed run sees exactly the data the uninterrupted run would have seen.
void sample_windows(const TokenStream& s, int B, int seq, uint64_t seed, int64_t step, int micro,
                    std::vector<int32_t>& inputs, std::vector<int32_t>& targets);

}  // namespace wattmoe
