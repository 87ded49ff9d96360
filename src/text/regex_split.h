// The pre-tokenizer regexes of GPT-2, Llama-3 and Qwen2, matched by hand (std::regex has no \p{L}). Each is an
// alternation tried in order at the current position with greedy, backtracking quantifiers; the code below
// follows that semantics branch by branch, with the character classes of text/unicode.h. Any other pattern is
// not supported and reported by the loader.
#pragma once
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace wattmoe {

enum class SplitRegex { Gpt2, Llama3, Qwen2 };

inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Which known pattern `regex` is (exact text), if any.
std::optional<SplitRegex> known_split_regex(std::string_view regex);

// Byte ranges [begin, end) of the successive non-overlapping matches in `text` (valid UTF-8).
std::vector<std::pair<size_t, size_t>> regex_matches(SplitRegex re, std::string_view text);

}  // namespace wattmoe
