// Weight-only low-precision experts: the number formats, and the CPU reference of quantising a weight matrix
// [rows, cols] (HF [out, in] layout) with one fp32 scale per row (per output channel) and of dequantising it.
//
//   fp8 (e4m3): code = e4m3(w / s), s = amax(row) / 448. e4m3 is CUDA's __nv_fp8_e4m3 (1 sign, 4 exponent bits, bias
//     7, 3 mantissa bits; no infinities; 0x7F/0xFF NaN; largest finite ±448, smallest subnormal 2^-9). The conversion
//     from float is exactly CUDA's (__nv_cvt_float_to_fp8 with __NV_SATFINITE): round to nearest, ties to even;
//     finite values beyond ±448 and ±inf saturate to ±448; NaN gives 0x7F; |x| ≤ 2^-10 gives a signed zero.
//   int8 (symmetric): code = clamp(round_half_even(w / s), -127, 127), s = amax(row) / 127 (-128 is never used).
//   dequantised w' = float(code) · s (fp32, one rounding).
// Rows: a row whose amax is 0 gets scale 1 (its codes are 0 and it dequantises to 0). A non-finite weight is a
// checkpoint error: quantise_rows throws naming the row (a NaN or inf would poison the row's scale). "bf16" means the
// weights are left as they are (the runner's own precision: fp32 on the CPU, bf16 on the GPU).
#pragma once
#include <cstdint>
#include <string>

namespace wattmoe::ops {

enum class ExpertPrecision { Bf16, Fp8, Int8 };

// "bf16" | "fp8" | "int8"; anything else throws, naming `flag` (e.g. "--expert-precision").
ExpertPrecision parse_expert_precision(const std::string& name, const std::string& flag = "--expert-precision");
// Inline, so the CUDA library (ops/cuda, which does not link the CPU ops) may name formats too.
inline const char* expert_precision_name(ExpertPrecision p) {
  return p == ExpertPrecision::Fp8 ? "fp8" : p == ExpertPrecision::Int8 ? "int8" : "bf16";
}
// Bytes per weight in the format (bf16 2, fp8 and int8 1); by name, as parse_expert_precision reads it (the energy
// models' price of a tier).
inline int expert_precision_bytes(ExpertPrecision p) { return p == ExpertPrecision::Bf16 ? 2 : 1; }
inline int expert_precision_bytes(const std::string& name) {
  return expert_precision_bytes(parse_expert_precision(name));
}

// fp8 e4m3 bits of x (CUDA's __nv_fp8_e4m3(x)), and the exact float of an e4m3 code (NaN for 0x7F/0xFF).
uint8_t fp8_e4m3_from_float(float x);
float fp8_e4m3_to_float(uint8_t b);
// int8 code of x (already divided by the scale): round half to even, clamped to [-127, 127]; NaN throws.
int8_t int8_from_float(float x);

// The row's scale: amax / 448 (fp8), amax / 127 (int8); 1 when amax is 0. p must not be Bf16.
float quant_row_scale(const float* row, int64_t cols, ExpertPrecision p);

// w [rows, cols] → codes [rows, cols] (e4m3 bits, or int8 two's complement bits) and scales [rows].
// p must be Fp8 or Int8. Throws (naming `what` and the row) on a non-finite weight.
void quantise_rows(const float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes, float* scales,
                   const std::string& what = "weight");
// codes, scales → w' [rows, cols] = float(code) · scale.
void dequantise_rows(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols, ExpertPrecision p,
                     float* w);
// Quantise then dequantise in place ("fake quant"): w becomes the values the quantised kernels compute with. With
// codes/scales non-null they receive the codes and scales too. Bf16: nothing changes.
void fake_quantise_rows(float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes = nullptr,
                        float* scales = nullptr, const std::string& what = "weight");

}  // namespace wattmoe::ops
