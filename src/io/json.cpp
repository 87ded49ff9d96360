#include "io/json.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/files.h"

namespace wattmoe {

std::string read_text_file(const std::string& path) {
  const int fd = open_regular_file(path);
  std::string s;
  char buf[1 << 16];
  ssize_t r = 0;
  int err = 0;
  while ((r = ::read(fd, buf, sizeof buf)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      err = errno;
      break;
    }
    s.append(buf, size_t(r));
  }
  ::close(fd);
  WATTMOE_REQUIRE(err == 0, "{}: cannot read ({})", path, std::strerror(err));
  return s;
}

void check_json_depth(std::string_view text, const std::string& what) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      WATTMOE_REQUIRE(++depth <= kMaxJsonDepth, "{}: JSON nested more than {} levels deep (at byte {})", what,
                      kMaxJsonDepth, i);
    } else if (c == ']' || c == '}') {
      --depth;  // unbalanced text is the parser's to report
    }
  }
}

Json parse_json(std::string_view text, const std::string& what) {
  check_json_depth(text, what);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    fail("{}: malformed JSON: {} (byte {})", what, e.what(), e.byte);
  } catch (const Json::exception& e) {
    fail("{}: malformed JSON: {}", what, e.what());
  }
}

Json read_json_file(const std::string& path) { return parse_json(read_text_file(path), path); }

void write_json_file(const std::string& path, const Json& j, int indent) {
  std::string text;
  try {
    text = j.dump(indent) + "\n";
  } catch (const Json::exception& e) {  // invalid UTF-8 in a string
    fail("{}: cannot write JSON: {}", path, e.what());
  }
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace wattmoe
