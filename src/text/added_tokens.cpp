#include "text/added_tokens.h"

#include <algorithm>

#include "text/unicode.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

size_t prev_char_start(std::string_view s, size_t e) {  // e > 0
  size_t i = e - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

char32_t char_at(std::string_view s, size_t i) {
  char32_t c;
  bool ok;
  utf8::decode_one(s, i, &c, &ok);
  return c;
}

// Start of the run of whitespace that ends s / length of the run that starts s.
size_t trailing_space_start(std::string_view s) {
  size_t e = s.size();
  while (e > 0) {
    size_t i = prev_char_start(s, e);
    if (!unicode::is_space(char_at(s, i))) break;
    e = i;
  }
  return e;
}
size_t leading_space_len(std::string_view s) {
  size_t n = 0;
  while (n < s.size()) {
    char32_t c;
    bool ok;
    size_t k = utf8::decode_one(s, n, &c, &ok);
    if (!unicode::is_space(c)) break;
    n += k;
  }
  return n;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (auto& t : tokens_) first_bytes_.set((unsigned char)t.content[0]);
}

std::vector<TextSpan> AddedTokenMatcher::split(std::string_view s) const {
  std::vector<TextSpan> out;
  size_t done = 0;  // everything before this offset is in `out`
  for (size_t pos = 0; pos < s.size();) {
    if (!first_bytes_[(unsigned char)s[pos]]) {
      ++pos;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (auto& t : tokens_)
      if (s.compare(pos, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + hit->content.size();
    pos = stop;  // the search resumes after this match even if it is discarded, as the automaton does
    if (hit->single_word) {
      bool word_before = start > 0 && unicode::is_word(char_at(s, prev_char_start(s, start)));
      bool word_after = stop < s.size() && unicode::is_word(char_at(s, stop));
      if (word_before || word_after) continue;
    }
    if (hit->lstrip) start = std::max(trailing_space_start(s.substr(0, start)), done);
    if (hit->rstrip) stop += leading_space_len(s.substr(stop));
    if (done < start) out.push_back({done, start, -1});
    out.push_back({start, stop, hit->id});
    done = pos = stop;
  }
  if (done < s.size()) out.push_back({done, s.size(), -1});
  return out;
}

}  // namespace wattmoe
