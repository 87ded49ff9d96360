#include "text/unicode.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "text/utf8.h"

namespace wattmoe::unicode {
namespace {

struct CpRange {
  uint32_t lo, hi;
};
struct CccRange {
  uint32_t lo, hi, ccc;
};
struct Decomp {
  uint32_t cp, first, second;
};
struct Compose {
  uint32_t first, second, composite;
};

#include "text/unicode_data.inc"

template <size_t N>
bool in_ranges(const CpRange (&r)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(r), std::end(r), uint32_t(c), [](uint32_t v, const CpRange& x) { return v < x.lo; });
  return it != std::begin(r) && c <= std::prev(it)->hi;
}

// Hangul syllables decompose and compose algorithmically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    int s = int(c - kSBase);
    out += char32_t(kLBase + s / kNCount);
    out += char32_t(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out += char32_t(kTBase + s % kTCount);
    return;
  }
  auto it = std::lower_bound(std::begin(kDecomp), std::end(kDecomp), uint32_t(c),
                             [](const Decomp& d, uint32_t v) { return d.cp < v; });
  if (it == std::end(kDecomp) || it->cp != c) {
    out += c;
    return;
  }
  decompose(it->first, out);
  if (it->second) decompose(it->second, out);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  auto it = std::lower_bound(std::begin(kCompose), std::end(kCompose), std::pair<uint32_t, uint32_t>(a, b),
                             [](const Compose& x, std::pair<uint32_t, uint32_t> v) {
                               return x.first != v.first ? x.first < v.first : x.second < v.second;
                             });
  return it != std::end(kCompose) && it->first == a && it->second == b ? it->composite : 0;
}

}  // namespace

bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  return in_ranges(kLetterRanges, c);
}
bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_ranges(kNumberRanges, c);
}
bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
  return in_ranges(kSpaceRanges, c);
}

bool is_word(char32_t c) {
  if (c < 0x80) return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  return in_ranges(kWordRanges, c);
}

int combining_class(char32_t c) {
  if (c < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kCccRanges), std::end(kCccRanges), uint32_t(c),
                             [](uint32_t v, const CccRange& x) { return v < x.lo; });
  return it != std::begin(kCccRanges) && c <= std::prev(it)->hi ? int(std::prev(it)->ccc) : 0;
}

// Canonical decomposition, canonical ordering, then canonical composition (UAX #15).
std::u32string nfc(std::u32string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(s);
  std::u32string d;
  d.reserve(s.size() + 8);
  for (char32_t c : s) decompose(c, d);
  for (size_t i = 0; i < d.size();) {  // stable-sort each run of non-starters by combining class
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  if (d.empty()) return d;
  size_t starter = 0, out = 1;
  int last_class = combining_class(d[0]) ? 256 : 0;
  for (size_t i = 1; i < d.size(); ++i) {
    char32_t c = d[i];
    int cc = combining_class(c);
    char32_t comp = compose_pair(d[starter], c);
    if (comp && (last_class < cc || last_class == 0)) {
      d[starter] = comp;
      continue;
    }
    if (cc == 0) starter = out;
    last_class = cc;
    d[out++] = c;
  }
  d.resize(out);
  return d;
}

std::string nfc(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return (unsigned char)c < 0xCC; })) return std::string(s);
  return utf8::encode(nfc(utf8::decode(s)));
}

}  // namespace wattmoe::unicode
