// Shared by the libFuzzer targets: every input must either be accepted or refused with wattmoe::Error — never a
// crash, an out-of-bounds read, UB (the build adds ASan + UBSan), a hang (libFuzzer's -timeout) or another exception
// type escaping (a nlohmann or std exception would be a message the parser did not write).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace wattmoe::fuzz {

inline std::string text(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

template <class F>
void accept_or_refuse(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

}  // namespace wattmoe::fuzz
