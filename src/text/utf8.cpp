#include "text/utf8.h"

namespace wattmoe::utf8 {

size_t decode_one(std::string_view s, size_t i, char32_t* cp, bool* ok) {
  auto at = [&](size_t k) -> unsigned { return k < s.size() ? (unsigned char)s[k] : 0x100u; };
  auto cont = [](unsigned b) { return b >= 0x80 && b <= 0xBF; };
  unsigned b0 = at(i);
  *ok = false;
  *cp = kReplacement;
  if (b0 < 0x80) {
    *ok = true;
    *cp = b0;
    return 1;
  }
  int need;
  unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte (excludes overlongs and surrogates)
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
  else if (b0 == 0xE0) need = 2, lo = 0xA0;
  else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) need = 2;
  else if (b0 == 0xED) need = 2, hi = 0x9F;
  else if (b0 == 0xF0) need = 3, lo = 0x90;
  else if (b0 >= 0xF1 && b0 <= 0xF3) need = 3;
  else if (b0 == 0xF4) need = 3, hi = 0x8F;
  else return 1;
  unsigned b1 = at(i + 1);
  if (b1 < lo || b1 > hi) return 1;
  char32_t v = (b0 & (0x3F >> need)) << 6 | (b1 & 0x3F);
  for (int k = 2; k <= need; ++k) {
    unsigned b = at(i + k);
    if (!cont(b)) return size_t(k);
    v = v << 6 | (b & 0x3F);
  }
  *ok = true;
  *cp = v;
  return size_t(need) + 1;
}

size_t find_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if ((unsigned char)s[i] < 0x80) {
      ++i;
      continue;
    }
    char32_t cp;
    bool ok;
    size_t n = decode_one(s, i, &cp, &ok);
    if (!ok) return i;
    i += n;
  }
  return std::string_view::npos;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
}

std::string encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append(out, c);
  return out;
}

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    bool ok;
    i += decode_one(s, i, &cp, &ok);
    out += cp;
  }
  return out;
}

std::string lossy(std::string_view s) {
  if (valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    bool ok;
    size_t n = decode_one(s, i, &cp, &ok);
    if (ok) out.append(s.substr(i, n));
    else append(out, kReplacement);
    i += n;
  }
  return out;
}

}  // namespace wattmoe::utf8
