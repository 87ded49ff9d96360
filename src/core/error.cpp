#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace wattmoe {

void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s %s\n", file, line, cond, msg.c_str());
  std::abort();
}

}  // namespace wattmoe
