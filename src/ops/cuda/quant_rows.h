// Weight-only quantisation on the GPU: the device twin of ops/quant.h's quantise_rows and fake_quantise_rows (the CPU
// reference, which states the formats), giving the same codes, scales and dequantised weights bit for bit: amax does
// not depend on the order it is taken in, the scale amax / 448 (or 127) and w / s are correctly rounded fp32 divisions
// (this library builds without fast math), e4m3 is CUDA's saturating conversion (which the CPU encoder reproduces),
// int8 rounds half to even. The routed experts' tier is set with it at load and at run time
// (gpu/moe_fused_cuda.cpp), so a tier switch is no host round trip of the weights.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/cuda/context.h"
#include "ops/quant.h"

namespace wattmoe::cuda {

// One matrix w [rows, cols] (device fp32, row-major) with its codes [rows, cols] and scales [rows] (device; either
// may be null).
struct QuantRowsJob {
  float* w;
  uint8_t* codes;
  float* scales;
  int64_t rows, cols;
};

// The first row of each job's matrix that holds a NaN or an infinity, or -1 where none does. Synchronises.
std::vector<int64_t> first_nonfinite_rows(Context& ctx, const std::vector<QuantRowsJob>& jobs);

// Fake-quantises every job's matrix in place to code · scale (p: Fp8 or Int8), writing the codes and scales where the
// job points them. The matrices must be finite (first_nonfinite_rows first): a row that is not is left as it is, its
// codes and scale unwritten. Synchronises.
void fake_quantise_rows(Context& ctx, const std::vector<QuantRowsJob>& jobs, ops::ExpertPrecision p);

}  // namespace wattmoe::cuda
