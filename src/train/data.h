// Training batches drawn from a token stream (text/token_stream.h).
#pragma once
#include <cstdint>
#include <vector>

#include "text/token_stream.h"

namespace wattmoe {

// B windows of seq+1 tokens at offsets drawn from a generator seeded by (seed, step, micro): the same arguments
// always give the same batch, so a resumed run sees exactly the data the uninterrupted run would have seen.
void sample_windows(const TokenStream& s, int B, int seq, uint64_t seed, int64_t step, int micro,
                    std::vector<int32_t>& inputs, std::vector<int32_t>& targets);

}  // namespace wattmoe
