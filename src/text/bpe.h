// The BPE model of Hugging Face `tokenizers`: a word (one pre-tokenized piece) starts as one symbol per
// character (unknown characters become <0xXX> byte tokens with byte_fallback, else the unk token), then the
// adjacent pair with the lowest merge rank is merged, leftmost first, until no pair has a merge.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wattmoe {

struct StringHash {  // lets the maps be searched with a string_view
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A vocab may leave ids unused (reserved ranges), this many at most: its id -> token table is dense.
inline constexpr int64_t kMaxUnusedVocabIds = 65536;

struct BpeOptions {
  std::optional<std::string> unk_token, continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};

class BpeModel {
 public:
  // Throws Error (prefixed with `where`) if a merge names a token, or forms a token, that is not in the vocab.
  BpeModel(TokenIdMap vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opt,
           const std::string& where);

  void tokenize(std::string_view word, std::vector<int32_t>& out) const;  // appends ids
  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr if no token has this id
  int32_t max_id() const { return int32_t(id_to_token_.size()) - 1; }
  size_t size() const { return vocab_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t id;
  };
  static uint64_t key(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }
  TokenIdMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions opt_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // <0xXX> tokens, -1 if absent
  std::vector<int32_t> char_ids_;        // id of the one-character token for code points < 0x800, -1 if absent
};

}  // namespace wattmoe
