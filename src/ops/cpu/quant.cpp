// CPU reference of weight-only quantisation (ops/quant.h).
#include "ops/quant.h"

#include <algorithm>
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

uint8_t fp8_e4m3_from_float(float x) {
  if (std::isnan(x)) return 0x7F;  // CUDA's canonical NaN, whatever the sign
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  // Above 448 + half an ulp (464) — and at 464 itself, the tie rounding to the even 448 — the result is 448.
  if (a >= 464.f) return sign | 0x7E;
  if (a <= 0x1p-10f)
    return sign;  // at most half the smallest subnormal (2^-9): zero (2^-10 ties to the even 0)
  int e = 0;
  std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  --e;
  if (e <
      -6) {  // subnormal: multiples of 2^-9; q = 8 carries into the smallest normal (encoding 0x08), as CUDA
    const int q = int(std::nearbyint(std::ldexp(a, 9)));  // exact scaling; nearbyint rounds half to even
    return sign | uint8_t(q);
  }
  int q = int(std::nearbyint(std::ldexp(a, 3 - e)));  // in [8, 16]: 1.mmm × 8
  if (q == 16) q = 8, ++e;
  // e ≤ 8 here (a < 464), and e = 8 has q ≤ 14 (a < 464 rounds to at most 1.75 · 2^8 = 448), so never 0x7F.
  return sign | uint8_t((e + 7) << 3) | uint8_t(q - 8);
}

float fp8_e4m3_to_float(uint8_t b) {
  const int exp = (b >> 3) & 0xF, man = b & 0x7;
  if (exp == 0xF && man == 0x7) return std::nanf("");
  const float v = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(float(8 + man), exp - 10);
  return (b & 0x80) ? -v : v;
}

int8_t int8_from_float(float x) {
  WATTMOE_REQUIRE(!std::isnan(x), "int8 quantisation of NaN");
  const float r =
      std::nearbyint(std::clamp(x, -127.f, 127.f));  // round half to even (the default rounding mode)
  return int8_t(r);
}

float quant_row_scale(const float* row, int64_t cols, ExpertPrecision p) {
  WATTMOE_CHECK(p != ExpertPrecision::Bf16, "quant_row_scale: bf16 has no scale");
  float amax = 0.f;
  for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(row[j]));
  if (amax == 0.f) return 1.f;
  return amax / (p == ExpertPrecision::Fp8 ? 448.f : 127.f);
}

void quantise_rows(const float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes,
                   float* scales, const std::string& what) {
  WATTMOE_CHECK(p != ExpertPrecision::Bf16, "quantise_rows: bf16 is not a quantised format");
  // Rows are independent: the pool only decides which thread encodes a row (a model's experts in seconds, not
  // a minute, when serve switches tiers).
  default_pool().parallel_for(
      rows,
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* row = w + r * cols;
          for (int64_t j = 0; j < cols; ++j)
            WATTMOE_REQUIRE(std::isfinite(row[j]),
                            "{}: row {} column {} is {}: cannot quantise a non-finite weight", what, r, j,
                            row[j]);
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

void fake_quantise_rows(float* w, int64_t rows, int64_t cols, ExpertPrecision p, uint8_t* codes,
                        float* scales, const std::string& what) {
  if (p == ExpertPrecision::Bf16) return;
  std::vector<uint8_t> own_codes;
  std::vector<float> own_scales;
  if (!codes) own_codes.resize(size_t(rows * cols)), codes = own_codes.data();
  if (!scales) own_scales.resize(size_t(rows)), scales = own_scales.data();
  quantise_rows(w, rows, cols, p, codes, scales, what);
  dequantise_rows(codes, scales, rows, cols, p, w);
}

}  // namespace wattmoe::ops
