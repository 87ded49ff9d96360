// Helpers for the io tests: a fresh temporary directory per test, raw file writes, error-message assertions.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "../test_util.h"
#include "core/error.h"

namespace wattmoe::test {

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A safetensors file image: 8-byte little-endian length, the header text, then `data_bytes` bytes of data.
inline std::string st_bytes(const std::string& header, size_t data_bytes = 0, uint64_t declared_len = ~0ull) {
  uint64_t n = declared_len == ~0ull ? header.size() : declared_len;
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(n >> (8 * i)));
  s += header;
  for (size_t i = 0; i < data_bytes; ++i) s += char(i * 7 + 1);
  return s;
}

// Runs `f`, expects a wattmoe::Error whose message starts with `prefix` and contains `phrase` and no newline.
template <class F>
void expect_error(F&& f, const std::string& prefix, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "expected an Error containing \"" << phrase << "\"";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind(prefix, 0), 0u) << "message does not start with " << prefix << ": " << m;
    EXPECT_NE(m.find(phrase), std::string::npos) << "message lacks \"" << phrase << "\": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "message is not one line: " << m;
  }
}

}  // namespace wattmoe::test
