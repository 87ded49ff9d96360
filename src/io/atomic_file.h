// AtomicFile: writes `path + ".tmp"` and renames it over `path` on commit(), so readers never see a
// half-written file. The path follows io/files.h's output_path rule (a symbolic link is written through; a device,
// FIFO or directory is refused). Without commit() (an exception on the way) the temporary is removed. Errors are
// wattmoe::Error naming path.
#pragma once
#include <cstddef>
#include <string>

namespace wattmoe {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();  // fsync, close, rename

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace wattmoe
