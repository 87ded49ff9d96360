// KV cache for decoding one sequence: per layer, keys (after RoPE) and values [capacity, kv_dim].
#pragma once
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace wattmoe {

template <class T>
struct KvCache {
  int64_t capacity = 0, length = 0, kv_dim = 0;
  std::vector<std::vector<T>> k, v;  // [layers][capacity * kv_dim]

  KvCache(int layers, int64_t cap, int64_t dim) : capacity(cap), kv_dim(dim), k(size_t(layers)), v(size_t(layers)) {
    for (auto& x : k) x.assign(size_t(cap * dim), T(0));
    for (auto& x : v) x.assign(size_t(cap * dim), T(0));
  }
  void clear() { length = 0; }
};

}  // namespace wattmoe
