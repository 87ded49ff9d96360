#include "io/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace wattmoe {

const char* file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a file";
}

int open_regular_file(const std::string& path, const char* noun) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  WATTMOE_REQUIRE(fd >= 0, "{}: cannot open{}{} ({})", path, noun ? " " : "", noun ? noun : "", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string why = ::fstat(fd, &st) != 0 ? std::strerror(errno) : file_kind(st.st_mode);
    ::close(fd);
    fail("{}: not a regular file ({})", path, why);
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::string output_path(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  std::error_code ec;
  for (int hops = 0; fs::is_symlink(fs::symlink_status(p, ec)); ++hops) {
    WATTMOE_REQUIRE(hops < 40, "{}: too many levels of symbolic links", path);
    const fs::path target = fs::read_symlink(p, ec);
    WATTMOE_REQUIRE(!ec, "{}: cannot read the symbolic link ({})", path, ec.message());
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  struct stat st {};
  if (::stat(p.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    fail("{}: will not write over {}; name a regular file", path, file_kind(st.st_mode));
  return p.string();
}

void refuse_output_is_input(const char* out_flag, const std::string& out,
                            const std::vector<std::pair<std::string, std::string>>& inputs) {
  namespace fs = std::filesystem;
  if (out.empty()) return;
  for (const auto& [flag, in] : inputs) {
    if (in.empty()) continue;
    std::error_code ec;
    const bool same = fs::equivalent(out, in, ec) && !ec;
    WATTMOE_REQUIRE(!same, "{} {}: is also {}; an output must not overwrite an input", out_flag, out, flag);
  }
}

FileLock::FileLock(const std::string& path, const std::string& what_if_held) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  WATTMOE_REQUIRE(fd_ >= 0, "{}: cannot open the lock file ({})", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) fail("{}: {}", path, what_if_held);
    fail("{}: cannot lock ({})", path, std::strerror(err));
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace wattmoe
