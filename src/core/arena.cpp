#include "core/arena.h"

#include <algorithm>
#include <cstdint>

namespace wattmoe {

void* Arena::alloc(size_t bytes, size_t align) {
  for (; current_ < blocks_.size(); ++current_) {
    Block& b = blocks_[current_];
    uintptr_t base = reinterpret_cast<uintptr_t>(b.mem.get());
    size_t off = ((base + b.used + align - 1) & ~(uintptr_t(align) - 1)) - base;
    if (off + bytes <= b.size) {
      b.used = off + bytes;
      return b.mem.get() + off;
    }
  }
  Block nb;
  nb.size = std::max(block_bytes_, bytes + align);
  nb.mem.reset(new std::byte[nb.size]);
  blocks_.push_back(std::move(nb));
  current_ = blocks_.size() - 1;
  return alloc(bytes, align);
}

void Arena::reset() {
  for (auto& b : blocks_) b.used = 0;
  current_ = 0;
}

size_t Arena::bytes_in_use() const {
  size_t s = 0;
  for (const auto& b : blocks_) s += b.used;
  return s;
}

size_t Arena::bytes_reserved() const {
  size_t s = 0;
  for (const auto& b : blocks_) s += b.size;
  return s;
}

}  // namespace wattmoe
