// Sampling the next token from logits: greedy at temperature 0, else temperature + nucleus (top-p).
#pragma once
#include <cstdint>

#include "core/rng.h"

namespace wattmoe {

int32_t sample_token(const float* logits, int V, double temperature, double top_p, Rng& rng);

}  // namespace wattmoe
