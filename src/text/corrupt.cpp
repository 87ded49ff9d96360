#include "text/corrupt.h"

#include <array>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "text/utf8.h"

namespace wattmoe {
namespace {

std::u32string decode_checked(std::string_view text, const char* what) {
  size_t bad = utf8::find_invalid(text);
  WATTMOE_REQUIRE(bad == std::string_view::npos, "{}: input is not valid UTF-8 (offset {})", what, bad);
  return utf8::decode(text);
}

// Neighbours on a US QWERTY keyboard: same row +-1, and the keys of the rows above and below whose centres
// are within one key width (rows are staggered by 0, 0.5, 0.75 and 1.25 keys).
class Qwerty {
 public:
  Qwerty() {
    static constexpr const char* kRows[] = {"1234567890-=", "qwertyuiop[]", "asdfghjkl;'", "zxcvbnm,./"};
    static constexpr double kShift[] = {0, 0.5, 0.75, 1.25};
    for (int r = 0; r < 4; ++r)
      for (int i = 0; kRows[r][i]; ++i) {
        std::u32string& n = near_[(unsigned char)kRows[r][i]];
        for (int r2 = std::max(0, r - 1); r2 <= std::min(3, r + 1); ++r2)
          for (int j = 0; kRows[r2][j]; ++j) {
            double d = std::abs((i + kShift[r]) - (j + kShift[r2]));
            if ((r2 == r && d == 1) || (r2 != r && d < 1)) n += char32_t(kRows[r2][j]);
          }
      }
    near_[' '] = U"cvbnm";
  }
  // A neighbour of c (keeping its case), or a random lowercase letter for characters not on the keyboard.
  char32_t neighbour(char32_t c, Rng& rng) const {
    bool upper = c >= 'A' && c <= 'Z';
    char32_t key = upper ? c + 32 : c;
    if (key < 128 && !near_[key].empty()) {
      char32_t n = near_[key][rng.below(near_[key].size())];
      return upper && n >= 'a' && n <= 'z' ? n - 32 : n;
    }
    return char32_t('a' + rng.below(26));
  }

 private:
  std::array<std::u32string, 128> near_;
};

char32_t upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;  // Latin-1
  if (c == 0xFF) return 0x178;
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;  // Greek (final sigma stays)
  if (c >= 0x430 && c <= 0x44F) return c - 32;                // Cyrillic а-я
  if (c >= 0x450 && c <= 0x45F) return c - 80;                // Cyrillic ѐ-џ
  return c;
}

bool is_blank(char32_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

std::string char_noise(std::string_view text, double p, Rng& rng, NoiseStats* stats) {
  WATTMOE_REQUIRE(p >= 0 && p <= 1, "char_noise: probability {} should be in [0, 1]", p);
  static const Qwerty kQwerty;  // immutable after construction
  std::u32string in = decode_checked(text, "char_noise"), out;
  out.reserve(in.size() + in.size() / 8);
  NoiseStats st;
  for (size_t i = 0; i < in.size(); ++i) {
    char32_t c = in[i];
    if (c == '\n') {
      out += c;
      continue;
    }
    ++st.chars;
    if (rng.uniform() >= p) {
      out += c;
      continue;
    }
    ++st.hits;
    int op = int(rng.below(4));
    if (op == 3 && (i + 1 >= in.size() || in[i + 1] == '\n')) op = 0;
    switch (op) {
      case 0:
        out += kQwerty.neighbour(c, rng);
        ++st.substitutions;
        break;
      case 1:
        ++st.deletions;
        break;
      case 2:
        out += c;
        out += kQwerty.neighbour(c, rng);
        ++st.insertions;
        break;
      case 3:
        out += in[i + 1];
        out += c;
        ++i;  // the next character moved; it is not considered again
        ++st.swaps;
        break;
    }
  }
  if (stats) *stats = st;
  return utf8::encode(out);
}

std::string all_caps(std::string_view text) {
  std::u32string u = decode_checked(text, "all_caps");
  for (char32_t& c : u) c = upper(c);
  return utf8::encode(u);
}

std::string shuffle_words(std::string_view text, Rng& rng) {
  std::u32string u = decode_checked(text, "shuffle_words");
  std::u32string out;
  out.reserve(u.size());
  std::vector<std::pair<size_t, size_t>> words;  // [begin, end) of each word of the line
  for (size_t line = 0;;) {
    size_t end = std::min(u.find(U'\n', line), u.size());
    words.clear();
    for (size_t i = line; i < end;) {
      if (is_blank(u[i])) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < end && !is_blank(u[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    std::vector<size_t> perm(words.size());
    for (size_t k = 0; k < perm.size(); ++k) perm[k] = k;
    for (size_t k = perm.size(); k > 1; --k) std::swap(perm[k - 1], perm[rng.below(k)]);  // Fisher-Yates
    size_t w = 0;
    for (size_t i = line; i < end;) {
      if (w < words.size() && i == words[w].first) {
        auto [b, e] = words[perm[w]];
        out.append(u, b, e - b);
        i = words[w++].second;
      } else {
        out += u[i++];
      }
    }
    if (end == u.size()) break;
    out += U'\n';
    line = end + 1;
  }
  return utf8::encode(out);
}

uint64_t derive_seed(uint64_t seed, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name, mixed with the seed
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h ^ (seed * 0x9e3779b97f4a7c15ull);
}

}  // namespace wattmoe
