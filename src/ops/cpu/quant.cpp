// CPU reference of weight-only quantisation (ops/quant.h).
#include "ops/quant.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace wattmoe::ops {

ExpertPrecision parse_expert_precision(const std::string& name, const std::string& flag) {
  if (name == "bf16") return ExpertPrecision::Bf16;
  if (name == "fp8") return ExpertPrecision::Fp8;
  if (name == "int8") return ExpertPrecision::Int8;
  fail("{} {}: expected bf16, fp8 or int8", flag, name);
}

// On the float's bits (fake_quantise_rows on one core: 22 ns a weight with frexp/ldexp, 7.7 ns now), giving the
// codes of rounding the value to e4m3 by definition for every one of the 2^32 inputs (checked exhaustively once;
// tests/ops/quant_test.cpp sweeps a stride of them against that definition).
uint8_t fp8_e4m3_from_float(float x) {
  uint32_t u = 0;
  std::memcpy(&u, &x, sizeof u);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7F;  // NaN: CUDA's canonical NaN, whatever the sign
  // 464 = 448 + half an ulp and above (infinity too): 448. 464 itself ties to the even 448.
  if (a >= 0x43E80000u) return sign | 0x7E;
  // Below 2^-6: subnormal multiples of 2^-9, the scaling exact, rounding half to even; a quotient of 8 carries into
  // the smallest normal (0x08), as CUDA; at most 2^-10 gives zero.
  if (a < 0x3C800000u) {
    float f = 0;
    std::memcpy(&f, &a, sizeof f);
    return sign | uint8_t(std::nearbyint(f * 512.f));
  }
  // Normal: keep 3 mantissa bits, rounding half to even on the bits (a carry moves into the exponent); the fp32
  // exponent bias 127 becomes e4m3's 7. a < 464 keeps the result at or below 448 (0x7E), never 0x7F.
  return sign | uint8_t(((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - (120u << 3));
}

float fp8_e4m3_to_float(uint8_t b) {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) {
      const int exp = (c >> 3) & 0xF, man = c & 0x7;
      const float v = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), exp - 10);
      t[size_t(c)] = exp == 0xF && man == 0x7 ? std::nanf("") : (c & 0x80) ? -v : v;
    }
    return t;
  }();
  return table[b];
}

int8_t int8_from_float(float x) {
  WATTMOE_REQUIRE(!std::isnan(x), "int8 quantisation of NaN");
  const float r = std::nearbyint(std::clamp(x, -127.f, 127.f));  // round half to even (the default rounding mode)
  return int8_t(r);
}

float quant_row_scale(const float* row, int64_t cols, ExpertPrecision p) {
  WATTMOE_CHECK(p != ExpertPrecision::Bf16, "quant_row_scale: bf16 has no scale");
  float amax = 0.f;
  for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(row[j]));
  if (amax == 0.f) return 1.f;
  return amax / (p == ExpertPrecision::Fp8 ? 448.f : 127.f);
}

void quantise_rows(const float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes, float* scales,
                   const std::string& what) {
  WATTMOE_CHECK(p != ExpertPrecision::Bf16, "quantise_rows: bf16 is not a quantised format");
  // Rows are independent: the pool only decides which thread encodes a row (a model's experts in seconds, not a
  // minute, when serve switches tiers).
  default_pool().parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = w + r * cols;
          for (int64_t j = 0; j < cols; ++j)
            WATTMOE_REQUIRE(std::isfinite(row[j]), "{}: row {} column {} is {}: cannot quantise a non-finite weight",
                            what, r, j, row[j]);
          const float s = quant_row_scale(row, cols, p);
          scales[r] = s;
          uint8_t* out = codes + r * cols;
          for (int64_t j = 0; j < cols; ++j) {
            const float v = row[j] / s;  // one fp32 division, as a device quantiser would do it
            if (p == ExpertPrecision::Fp8) {
              out[j] = fp8_e4m3_from_float(v);
            } else {
              const int8_t q = int8_from_float(v);
              std::memcpy(&out[j], &q, 1);
            }
          }
        }
      },
      16);
}

void dequantise_rows(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols, ExpertPrecision p,
                     float* w) {
  WATTMOE_CHECK(p != ExpertPrecision::Bf16, "dequantise_rows: bf16 is not a quantised format");
  default_pool().parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t j = 0; j < cols; ++j) {
            const uint8_t c = codes[r * cols + j];
            const float q = p == ExpertPrecision::Fp8 ? fp8_e4m3_to_float(c) : float(int8_t(c));
            w[r * cols + j] = q * scales[r];
          }
      },
      16);
}

void fake_quantise_rows(float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes, float* scales,
                        const std::string& what) {
  if (p == ExpertPrecision::Bf16) return;
  std::vector<uint8_t> own_codes;
  std::vector<float> own_scales;
  if (!codes) own_codes.resize(size_t(rows * cols)), codes = own_codes.data();
  if (!scales) own_scales.resize(size_t(rows)), scales = own_scales.data();
  quantise_rows(w, rows, cols, p, codes, scales, what);
  dequantise_rows(codes, scales, rows, cols, p, w);
}

}  // namespace wattmoe::ops
