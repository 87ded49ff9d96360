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

}  // namespace wattmoe
