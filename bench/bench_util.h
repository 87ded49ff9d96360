// Host helpers the CUDA benchmarks share (moe_layer_bench, attention_bench): a comma-separated list of ints from a
// flag's argument ("1,8,64" -> {1, 8, 64}; atoi per item) and the median of a sample (0 when empty; the upper middle
// for an even count).
#pragma once
#include <algorithm>
#include <cstdlib>
#include <vector>

inline std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

template <class T>
double median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : double(v[v.size() / 2]);
}
