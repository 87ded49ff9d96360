#include "text/regex_split.h"

#include <cstdint>

#include "text/unicode.h"
#include "text/utf8.h"

namespace wattmoe {

std::optional<SplitRegex> known_split_regex(std::string_view regex) {
  if (regex == kGpt2Pattern) return SplitRegex::Gpt2;
  if (regex == kLlama3Pattern) return SplitRegex::Llama3;
  if (regex == kQwen2Pattern) return SplitRegex::Qwen2;
  return std::nullopt;
}

namespace {

enum Cls : uint8_t { kLetter, kNumber, kSpace, kOther };

struct Text {
  std::u32string cp;
  std::vector<uint8_t> cls;
  std::vector<size_t> off;  // byte offset of each code point, plus the end
  size_t n() const { return cp.size(); }
  bool is(size_t i, Cls c) const { return i < n() && cls[i] == c; }
  bool newline(size_t i) const { return i < n() && (cp[i] == '\r' || cp[i] == '\n'); }
  size_t run(size_t i, Cls c) const {  // end of the run of class c starting at i
    while (is(i, c)) ++i;
    return i;
  }
};

Text classify(std::string_view s) {
  Text t;
  for (size_t i = 0; i < s.size();) {
    char32_t c;
    bool ok;
    t.off.push_back(i);
    i += utf8::decode_one(s, i, &c, &ok);
    t.cp += c;
    t.cls.push_back(unicode::is_letter(c) ? kLetter : unicode::is_number(c) ? kNumber : unicode::is_space(c) ? kSpace : kOther);
  }
  t.off.push_back(s.size());
  return t;
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive (then ſ, U+017F, folds to s as in Oniguruma).
size_t contraction(const Text& t, size_t i, bool fold) {
  if (t.cp[i] != '\'' || i + 1 >= t.n()) return 0;
  auto lower = [&](size_t k) -> char32_t {
    if (k >= t.n()) return 0;
    char32_t c = t.cp[k];
    if (!fold) return c;
    if (c == 0x17F) return 's';
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
  };
  char32_t a = lower(i + 1), b = lower(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// \s+(?!\S)|\s+ : a whitespace run, less its last character when a non-space follows and the run is longer
// than one.
size_t space_run(const Text& t, size_t i) {
  size_t k = t.run(i, kSpace);
  if (k == t.n() || k - i == 1) return k - i;
  return k - 1 - i;
}

size_t match_gpt2(const Text& t, size_t i) {
  if (size_t n = contraction(t, i, false)) return n;
  size_t j = t.cp[i] == ' ' ? i + 1 : i;
  for (Cls c : {kLetter, kNumber, kOther})  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    if (t.is(j, c)) return t.run(j, c) - i;
  return space_run(t, i);
}

size_t match_llama3(const Text& t, size_t i, size_t max_digits) {
  if (size_t n = contraction(t, i, true)) return n;
  if (t.is(i, kLetter)) return t.run(i, kLetter) - i;  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!t.is(i, kNumber) && !t.newline(i) && t.is(i + 1, kLetter)) return t.run(i + 1, kLetter) - i;
  if (t.is(i, kNumber)) return std::min(t.run(i, kNumber) - i, max_digits);
  size_t j = t.cp[i] == ' ' ? i + 1 : i;  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  if (t.is(j, kOther)) {
    j = t.run(j, kOther);
    while (t.newline(j)) ++j;
    return j - i;
  }
  size_t k = t.run(i, kSpace);  // \s*[\r\n]+ : up to the last line break of the whitespace run
  for (size_t m = k; m > i; --m)
    if (t.newline(m - 1)) return m - i;
  return space_run(t, i);
}

}  // namespace

std::vector<std::pair<size_t, size_t>> regex_matches(SplitRegex re, std::string_view text) {
  Text t = classify(text);
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t i = 0; i < t.n();) {
    size_t len = re == SplitRegex::Gpt2 ? match_gpt2(t, i) : match_llama3(t, i, re == SplitRegex::Llama3 ? 3 : 1);
    if (len == 0) {  // no branch matches here (cannot happen with these patterns): a gap, as in the regex
      ++i;
      continue;
    }
    out.emplace_back(t.off[i], t.off[i + len]);
    i += len;
  }
  return out;
}

}  // namespace wattmoe
