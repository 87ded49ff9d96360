// UTF-8 helpers. Tokenizers work on Unicode scalar values (like Rust's char); invalid input bytes are reported or
// replaced with U+FFFD the way Rust's String::from_utf8_lossy does, so decodes match Hugging Face `tokenizers`.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace wattmoe::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;

// Decodes one scalar value at s[i]. Returns the number of bytes consumed (>= 1). On an invalid sequence *cp is
// set to kReplacement and the return value is the length of its maximal valid prefix (at least 1), which is the
// unit from_utf8_lossy replaces by one U+FFFD; *ok says which case it was.
size_t decode_one(std::string_view s, size_t i, char32_t* cp, bool* ok);

// Byte offset of the first invalid sequence, or npos when s is valid UTF-8.
size_t find_invalid(std::string_view s);
inline bool valid(std::string_view s) { return find_invalid(s) == std::string_view::npos; }

void append(std::string& out, char32_t cp);
std::string encode(std::u32string_view cps);
std::u32string decode(std::string_view s);  // invalid sequences become U+FFFD
std::string lossy(std::string_view bytes);  // valid UTF-8 out; each maximal invalid subpart -> U+FFFD

}  // namespace wattmoe::utf8
