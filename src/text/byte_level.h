// GPT-2's reversible byte <-> printable character map used by ByteLevel pre-tokenizers and decoders: printable
// Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in order, so no piece contains a space or a
// control character.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace wattmoe {

class ByteLevelMap {
 public:
  ByteLevelMap();
  char32_t to_char(uint8_t b) const { return byte_to_char_[b]; }
  // The byte a mapped character stands for, or -1 if c is not one of the 256 characters.
  int to_byte(char32_t c) const { return c < char_to_byte_.size() ? char_to_byte_[c] : -1; }
  std::string encode(std::string_view bytes) const;  // every byte -> its character, as UTF-8

 private:
  std::array<char32_t, 256> byte_to_char_{};
  std::array<int16_t, 324> char_to_byte_{};  // mapped characters are all below U+0144
};

}  // namespace wattmoe
