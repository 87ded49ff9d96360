// Reading the corpus sources: the `bible` program, the fortune files and /usr/include.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/json.h"
#include "text/corpus.h"
#include "text/utf8.h"

extern char** environ;

namespace wattmoe {
namespace {

constexpr const char* kBibleHint = "install the Debian package bible-kjv (scripts/install_deps.sh installs it)";

}  // namespace

std::string run_program(const std::vector<std::string>& argv, const char* hint) {
  int fds[2];
  WATTMOE_REQUIRE(::pipe2(fds, O_CLOEXEC) == 0, "cannot create a pipe ({})", std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    fail("cannot run `{}` ({}): {}", argv[0], std::strerror(rc), hint);
  }
  std::string out;
  char buf[1 << 16];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  WATTMOE_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "`{}` failed (exit status {}): {}", argv[0],
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1, hint);
  return out;
}

namespace {

// "Ge1:1 ", "1Sm2:3 ", "SSol8:14 ": optional digit, letters, chapter:verse, then a space.
size_t verse_ref_len(std::string_view line) {
  size_t i = 0;
  if (i < line.size() && line[i] >= '1' && line[i] <= '3') ++i;
  size_t letters = i;
  while (i < line.size() && std::isalpha((unsigned char)line[i])) ++i;
  if (i == letters) return 0;
  size_t digits = i;
  while (i < line.size() && std::isdigit((unsigned char)line[i])) ++i;
  if (i == digits || i >= line.size() || line[i] != ':') return 0;
  digits = ++i;
  while (i < line.size() && std::isdigit((unsigned char)line[i])) ++i;
  if (i == digits || i >= line.size() || line[i] != ' ') return 0;
  return i + 1;
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && std::isspace((unsigned char)s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

// `bible -f` prints each verse on one line as "Ge1:1 In the beginning ..." when stdout is not a terminal
// (bible-kjv 4.38: 31102 lines, no blank or wrapped lines). We rely on the reference, not on line breaks: a line
// that starts with a reference starts a verse, a non-blank line without one continues the previous verse
// (joined with a space, should some version wrap long verses), blank lines are dropped and trailing whitespace
// is trimmed (one verse, Mark 10:19, ends in a space).
std::vector<std::string> kjv_verses(std::string_view out, std::vector<std::string>* refs) {
  std::vector<std::string> verses;
  if (refs) refs->clear();
  while (!out.empty()) {
    size_t nl = out.find('\n');
    std::string_view line = rtrim(out.substr(0, nl));
    out.remove_prefix(nl == std::string_view::npos ? out.size() : nl + 1);
    if (line.empty()) continue;
    if (size_t ref = verse_ref_len(line)) {
      verses.emplace_back(line.substr(ref));
      if (refs) refs->emplace_back(line.substr(0, ref - 1));
    } else {
      WATTMOE_REQUIRE(!verses.empty(), "bible output: the first line has no verse reference: \"{}\"", line);
      size_t lead = line.find_first_not_of(" \t");
      verses.back() += ' ';
      verses.back() += line.substr(lead);
    }
  }
  return verses;
}

std::string run_bible() { return run_program({"bible", "-f", "Gen1:1-Rev22:21"}, kBibleHint); }

LineSplit split_90_5_5(const std::vector<std::string>& lines) {
  size_t n = lines.size(), a = n * 90 / 100, b = a + n * 5 / 100;
  LineSplit s;
  s.train.assign(lines.begin(), lines.begin() + long(a));
  s.val.assign(lines.begin() + long(a), lines.begin() + long(b));
  s.test.assign(lines.begin() + long(b), lines.end());
  return s;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (auto& l : lines) s += l, s += '\n';
  return s;
}

size_t count_lines(std::string_view t) {
  size_t n = size_t(std::count(t.begin(), t.end(), '\n'));
  return n + (!t.empty() && t.back() != '\n');
}

std::vector<std::string> fortune_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  WATTMOE_REQUIRE(fs::is_directory(dir, ec), "{}: no fortune files here; install the Debian package fortunes "
                  "(scripts/install_deps.sh installs it)", dir);
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    bool data = n.ends_with(".dat") || n.ends_with(".u8");  // indexes and symlinks to the same text
    bool skip = n == "ascii-art" || n == "translate-me";    // pictures; Latin
    if (!data && !skip && !e.is_symlink() && e.is_regular_file()) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  WATTMOE_REQUIRE(!names.empty(), "{}: no fortune files found", dir);
  return names;
}

std::vector<std::string> split_fortunes(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;  // the fortune being read
  auto flush = [&] {
    std::string_view f = rtrim(cur);
    while (!f.empty() && f.front() == '\n') f.remove_prefix(1);
    if (!f.empty()) out.emplace_back(f);
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    size_t nl = std::min(text.find('\n', i), text.size());
    std::string_view line(text.data() + i, nl - i);
    i = nl + 1;
    if (line == "%") {
      flush();
      continue;
    }
    for (char c : line) {  // "_\bX" (underline) or "X\bX" (bold): keep what was printed last
      if (c == '\b') {
        if (!cur.empty() && cur.back() != '\n') cur.pop_back();
      } else {
        cur += c;
      }
    }
    cur += '\n';
  }
  flush();
  return out;
}

std::string fortunes_corpus(const std::string& dir) {
  std::string out;
  for (auto& n : fortune_files(dir))
    for (auto& f : split_fortunes(utf8::lossy(read_text_file(dir + "/" + n)))) out += f, out += "\n\n";
  return out;
}

std::string c_headers_corpus(const std::string& dir, size_t cap_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  WATTMOE_REQUIRE(fs::is_directory(dir, ec), "{}: not a directory (expected the system C headers)", dir);
  std::vector<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::directory_entry& e = *it;
    if (e.is_symlink() || !e.is_regular_file() || e.path().extension() != ".h") continue;
    if (e.file_size() > (128u << 10)) continue;
    std::string rel = fs::relative(e.path(), dir).string();
    if (!rel.starts_with("c++/")) paths.push_back(rel);  // libstdc++'s headers are C++, not C
  }
  WATTMOE_REQUIRE(!ec, "{}: cannot list ({})", dir, ec.message());
  // Shallow paths first (the libc headers at the top: stdio.h, ...), then by name, so the cap cuts the deep
  // library trees rather than libc.
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::sort(paths.begin(), paths.end(), [&](const std::string& a, const std::string& b) {
    return depth(a) != depth(b) ? depth(a) < depth(b) : a < b;
  });
  std::string out;
  for (auto& p : paths) {
    std::string text = read_text_file(dir + "/" + p);
    if (!utf8::valid(text)) continue;
    if (!text.empty() && text.back() != '\n') text += '\n';
    std::string head = "/* " + p + " */\n";
    if (out.size() + head.size() + text.size() > cap_bytes) break;
    out += head;
    out += text;
  }
  return out;
}

}  // namespace wattmoe
