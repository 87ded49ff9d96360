#include "core/scratch.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

namespace wattmoe::detail {

struct ScratchBlock {
  void* mem = nullptr;
  size_t bytes = 0;
};

namespace {

// The calling thread's released blocks. Owned here: freed when the thread exits.
struct ScratchCache {
  std::vector<ScratchBlock*> free;
  ~ScratchCache() {
    for (ScratchBlock* b : free) {
      std::free(b->mem);
      delete b;
    }
  }
};

ScratchCache& cache() {
  thread_local ScratchCache c;
  return c;
}

}  // namespace

ScratchBlock* scratch_acquire(size_t bytes) {
  bytes = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
  auto& fl = cache().free;
  // Best fit among the free blocks; else grow the largest one (so the cache does not fill with small blocks).
  size_t best = fl.size(), largest = fl.size();
  for (size_t i = 0; i < fl.size(); ++i) {
    if (fl[i]->bytes >= bytes && (best == fl.size() || fl[i]->bytes < fl[best]->bytes)) best = i;
    if (largest == fl.size() || fl[i]->bytes > fl[largest]->bytes) largest = i;
  }
  ScratchBlock* b = nullptr;
  if (best < fl.size()) {
    b = fl[best];
    fl.erase(fl.begin() + std::ptrdiff_t(best));
    return b;
  }
  if (largest < fl.size()) {
    b = fl[largest];
    fl.erase(fl.begin() + std::ptrdiff_t(largest));
    std::free(b->mem);
  } else {
    b = new ScratchBlock;
  }
  b->mem = std::aligned_alloc(64, bytes);
  if (!b->mem) {
    delete b;
    throw std::bad_alloc();
  }
  b->bytes = bytes;
  return b;
}

void scratch_release(ScratchBlock* b) { cache().free.push_back(b); }

void* scratch_data(ScratchBlock* b) { return b->mem; }

}  // namespace wattmoe::detail
