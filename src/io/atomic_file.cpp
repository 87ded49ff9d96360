#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "io/files.h"

namespace wattmoe {

AtomicFile::AtomicFile(std::string path) : path_(output_path(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  WATTMOE_REQUIRE(fd_ >= 0, "{}: cannot create temporary file {} ({})", path_, tmp_, std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  WATTMOE_CHECK(fd_ >= 0, "write after commit");
  auto p = static_cast<const char*>(data);
  while (n > 0) {  // write() may write less than asked (large buffers, signals)
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    WATTMOE_REQUIRE(w > 0, "{}: write failed ({})", path_, w < 0 ? std::strerror(errno) : "no progress");
    p += w;
    n -= size_t(w);
  }
}

void AtomicFile::commit() {
  WATTMOE_CHECK(fd_ >= 0, "commit twice");
  // fsync before rename: otherwise a power loss can leave the new name pointing at an empty file.
  WATTMOE_REQUIRE(::fsync(fd_) == 0, "{}: fsync failed ({})", path_, std::strerror(errno));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp_.c_str());
    fail("{}: cannot {} ({})", path_, rc != 0 ? "close temporary file" : "rename temporary file into place",
         why);
  }
}

}  // namespace wattmoe
