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

// The rows of each (token, slot): out[t·k + s] is the row of token t's slot s, −1 for an empty slot (the layout
// ops::sum_rows reads; `tokens` and `k` are the Routing's).
std::vector<int64_t> slot_rows(const Dispatch& d, int64_t tokens, int k);
// The same with each token's k entries sorted ascending (−1 first): sum_rows then adds a token's rows in row order,
// the order one pass over the rows would add them (the experts' input gradients in the backward).
std::vector<int64_t> slot_rows_in_row_order(const Dispatch& d, int64_t tokens, int k);

}  // namespace wattmoe
