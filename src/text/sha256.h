// SHA-256 (FIPS 180-4), for the corpus manifest: a digest anyone can check with `sha256sum`.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace wattmoe {

class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::array<uint8_t, 32> digest();  // finishes; the object is spent afterwards
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

inline std::string sha256_hex(std::string_view data) {
  Sha256 s;
  s.update(data);
  return s.hex();
}

}  // namespace wattmoe
