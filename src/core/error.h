// Errors. Two kinds, never mixed:
//  - wattmoe::Error: bad configuration or input (a file, a tensor, a flag). The message names the thing and says
//    what was expected; callers catch it at the CLI boundary and exit non-zero with one line.
//  - WATTMOE_CHECK: a programming error (broken invariant). Aborts with file:line; never caught.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace wattmoe {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... A>
[[noreturn]] void fail(fmt::format_string<A...> f, A&&... a) {
  throw Error(fmt::format(f, std::forward<A>(a)...));
}

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace wattmoe

// Input/config validation: throws wattmoe::Error with a formatted message.
#define WATTMOE_REQUIRE(cond, ...)                 \
  do {                                             \
    if (!(cond)) ::wattmoe::fail(__VA_ARGS__);     \
  } while (0)

// Internal invariant: aborts with file:line.
#define WATTMOE_CHECK(cond, ...)                                                                 \
  do {                                                                                           \
    if (!(cond)) ::wattmoe::check_failed(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
