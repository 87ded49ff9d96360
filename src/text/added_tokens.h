// Added tokens of a tokenizer.json ("<|endoftext|>", "<s>", ...): found in the text before the BPE model runs,
// leftmost-longest, with the lstrip / rstrip / single_word options of `tokenizers`' AddedVocabulary
// (single_word: no \w character right before or after the match).
#pragma once
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wattmoe {

struct AddedToken {
  std::string content;  // what is matched (for normalized tokens: the content after the normalizer)
  int32_t id = -1;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

struct TextSpan {
  size_t begin, end;
  int32_t id;  // -1: plain text to tokenize
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Cuts `s` into plain spans and added-token spans covering it, in order; empty spans are left out.
  std::vector<TextSpan> split(std::string_view s) const;

 private:
  std::vector<AddedToken> tokens_;  // longest first, so the first hit at a position is the longest
  std::bitset<256> first_bytes_;    // bytes some token starts with: other positions are skipped quickly
};

}  // namespace wattmoe
