// Opening files we read, and checking paths we write, in one place (issue 21: a FIFO where a file is expected must
// not block, an output must never replace a device, a directory or one of the run's inputs).
#pragma once
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace wattmoe {

// "a FIFO", "a directory", "a character device", ... for a stat mode (error messages).
const char* file_kind(mode_t mode);

// Opens `path` read-only without blocking (a FIFO with no writer would block open(2) forever) and refuses anything
// but a regular file: Error "PATH: not a regular file (a FIFO)", "PATH: cannot open (No such file or directory)".
// Returns the descriptor (blocking mode restored); the caller closes it.
// `noun` ("safetensors file") goes into the cannot-open message: "PATH: cannot open safetensors file (...)".
int open_regular_file(const std::string& path, const char* noun = nullptr);

// Where an output really goes, checked before anything is written — one rule for every file we write (atomic
// replacements, logs, traces, metrics): a symbolic link is written through (the file it points at is written, the
// link stays); an existing path that is not a regular file (a device, a FIFO, a directory) is refused, never replaced
// or blocked on. Error "PATH: will not write over a character device; name a regular file".
std::string output_path(const std::string& path);

// Refuses an output that is one of the run's inputs (the same file, however named): Error "--log x: is also --data; an
// output must not overwrite an input". inputs: {flag, path} pairs; empty paths are skipped.
void refuse_output_is_input(const char* out_flag, const std::string& out,
                            const std::vector<std::pair<std::string, std::string>>& inputs);

// An exclusive advisory lock (flock) on PATH (created if missing), held while the object lives; released by the
// kernel if the process dies. Error "PATH: WHAT" when another process holds it.
class FileLock {
 public:
  FileLock(const std::string& path, const std::string& what_if_held);
  ~FileLock();
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace wattmoe
