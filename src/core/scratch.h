// Scratch<T>: a temporary buffer of n elements for the CPU hot paths (per-layer gradients, gathered expert rows),
// taken from a per-thread cache of blocks instead of the system allocator.
//
// Why: a training step allocates and frees dozens of megabyte-sized temporaries; from malloc each one comes back as
// fresh pages (mmap or a trimmed heap), so a step spent ~15% of its time in page faults and zero-filling. The cache
// keeps released blocks for the next request of the same thread. It holds memory only, never values: the contents
// of a new Scratch are unspecified (call zero() where the code accumulates), so results cannot depend on it.
// A Scratch must be released on the thread that made it (it is neither copyable nor movable; use it as a local).
// The cache of a thread holds at most as many blocks as that thread ever used at once, and frees them when the
// thread exits.
#pragma once
#include <cstddef>
#include <cstring>

namespace wattmoe {

namespace detail {
struct ScratchBlock;
ScratchBlock* scratch_acquire(size_t bytes);  // a block of at least `bytes`, 64-byte aligned
void scratch_release(ScratchBlock* b);
void* scratch_data(ScratchBlock* b);
}  // namespace detail

template <class T>
class Scratch {
 public:
  explicit Scratch(size_t n) : n_(n), block_(detail::scratch_acquire(n * sizeof(T))) {}
  ~Scratch() { detail::scratch_release(block_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* data() { return static_cast<T*>(detail::scratch_data(block_)); }
  const T* data() const { return static_cast<const T*>(detail::scratch_data(block_)); }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + n_; }
  void zero() { std::memset(static_cast<void*>(data()), 0, n_ * sizeof(T)); }

 private:
  size_t n_;
  detail::ScratchBlock* block_;
};

}  // namespace wattmoe
