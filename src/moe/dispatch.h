// Dispatch: the (token, slot) pairs of a Routing grouped by expert into contiguous rows, so each expert runs one GEMM
// over its rows. Within an expert, rows are ordered by token then slot (stable), which makes the CPU result
// independent of thread count. offsets[e] .. offsets[e+1] are expert e's rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moe/routing.h"

namespace wattmoe {

struct Dispatch {
  std::vector<int64_t> offsets;  // [experts + 1]
  std::vector<int32_t> token;    // [rows]: source token of each row
  std::vector<int32_t> slot;     // [rows]: slot of that token
  int64_t rows() const { return int64_t(token.size()); }
};

Dispatch build_dispatch(const Routing& r);

}  // namespace wattmoe
