// A bump allocator for per-step scratch memory: allocations are freed together by reset().
// Blocks are kept across resets, so a steady-state step allocates nothing from the system.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

namespace wattmoe {

class Arena {
 public:
  explicit Arena(size_t block_bytes = size_t(1) << 20) : block_bytes_(block_bytes) {}
  void* alloc(size_t bytes, size_t align = 64);
  template <class T>
  T* alloc_n(size_t n) {
    return static_cast<T*>(alloc(n * sizeof(T), alignof(T) < 64 ? 64 : alignof(T)));
  }
  void reset();
  size_t bytes_in_use() const;
  size_t bytes_reserved() const;

 private:
  struct Block {
    std::unique_ptr<std::byte[]> mem;
    size_t size = 0, used = 0;
  };
  std::vector<Block> blocks_;
  size_t current_ = 0, block_bytes_;
};

}  // namespace wattmoe
