#include "text/byte_level.h"

#include "text/utf8.h"

namespace wattmoe {

ByteLevelMap::ByteLevelMap() {
  char_to_byte_.fill(-1);
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    char32_t c = printable(b) ? char32_t(b) : char32_t(256 + n++);
    byte_to_char_[b] = c;
    char_to_byte_[c] = int16_t(b);
  }
}

std::string ByteLevelMap::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8::append(out, byte_to_char_[b]);
  return out;
}

}  // namespace wattmoe
