// Weight-only quantisation (ops/quant.h): the e4m3 conversion against CUDA's rules (known codes, ties to even,
// saturation, NaN, signed zero, subnormals, every code round-tripping and every midpoint rounding to the even
// neighbour), int8 rounding and clamping, per-row scales (zero rows, non-finite weights refused) and the dequantised
// error bound the GPU tests and the quality numbers rely on.
#include "ops/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "../test_util.h"

namespace wattmoe {
namespace {

using ops::ExpertPrecision;

TEST(Fp8E4m3, KnownCodes) {
  EXPECT_EQ(ops::fp8_e4m3_from_float(1.f), 0x38);
  EXPECT_EQ(ops::fp8_e4m3_from_float(-1.f), 0xB8);
  EXPECT_EQ(ops::fp8_e4m3_from_float(448.f), 0x7E);
  EXPECT_EQ(ops::fp8_e4m3_from_float(-448.f), 0xFE);
  EXPECT_EQ(ops::fp8_e4m3_from_float(0x1p-6f), 0x08);  // smallest normal
  EXPECT_EQ(ops::fp8_e4m3_from_float(0x1p-9f), 0x01);  // smallest subnormal
  EXPECT_EQ(ops::fp8_e4m3_from_float(7 * 0x1p-9f), 0x07);  // largest subnormal
  EXPECT_EQ(ops::fp8_e4m3_from_float(1.5f * 0x1p-10f), 0x01);
  EXPECT_EQ(ops::fp8_e4m3_from_float(0.99f * 0x1p-6f), 0x08);  // a subnormal rounding up into the normals
  EXPECT_EQ(ops::fp8_e4m3_from_float(0.f), 0x00);
  EXPECT_EQ(ops::fp8_e4m3_from_float(-0.f), 0x80);
  EXPECT_EQ(ops::fp8_e4m3_from_float(0x1p-10f), 0x00);    // half the smallest subnormal: ties to the even zero
  EXPECT_EQ(ops::fp8_e4m3_from_float(-0x1p-11f), 0x80);   // underflow keeps the sign
  // Ties to even: 1 + 1/16 lies between 1 (mantissa 0) and 1.125 (1); 1.1875 between 1.125 (1) and 1.25 (2).
  EXPECT_EQ(ops::fp8_e4m3_from_float(1.0625f), 0x38);
  EXPECT_EQ(ops::fp8_e4m3_from_float(1.1875f), 0x3A);
  EXPECT_EQ(ops::fp8_e4m3_from_float(1.07f), 0x39);
}

TEST(Fp8E4m3, SaturatesAndNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ops::fp8_e4m3_from_float(449.f), 0x7E);
  EXPECT_EQ(ops::fp8_e4m3_from_float(464.f), 0x7E);  // the would-be tie with 480 (not a code): 448
  EXPECT_EQ(ops::fp8_e4m3_from_float(1e30f), 0x7E);
  EXPECT_EQ(ops::fp8_e4m3_from_float(inf), 0x7E);
  EXPECT_EQ(ops::fp8_e4m3_from_float(-inf), 0xFE);
  EXPECT_EQ(ops::fp8_e4m3_from_float(std::nanf("")), 0x7F);
  EXPECT_EQ(ops::fp8_e4m3_from_float(-std::nanf("")), 0x7F);  // CUDA's canonical NaN drops the sign
  EXPECT_TRUE(std::isnan(ops::fp8_e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(ops::fp8_e4m3_to_float(0xFF)));
  EXPECT_EQ(ops::fp8_e4m3_to_float(0x7E), 448.f);
}

TEST(Fp8E4m3, EveryCodeRoundTripsAndMidpointsGoToEven) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) continue;
    EXPECT_EQ(ops::fp8_e4m3_from_float(ops::fp8_e4m3_to_float(uint8_t(b))), b) << "code " << b;
  }
  for (int b = 0; b < 0x7E; ++b) {  // adjacent positive codes b, b+1
    const float lo = ops::fp8_e4m3_to_float(uint8_t(b)), hi = ops::fp8_e4m3_to_float(uint8_t(b + 1));
    const float mid = 0.5f * (lo + hi);  // exact in fp32
    EXPECT_EQ(ops::fp8_e4m3_from_float(mid), (b & 1) ? b + 1 : b) << "midpoint of " << b << " and " << b + 1;
    EXPECT_EQ(ops::fp8_e4m3_from_float(std::nextafter(mid, 0.f)), b);
    EXPECT_EQ(ops::fp8_e4m3_from_float(std::nextafter(mid, 1e9f)), b + 1);
  }
}

// e4m3 by definition (frexp, exact scaling, nearbyint): the oracle of the encoder that works on the float's bits.
uint8_t e4m3_by_definition(float x) {
  if (std::isnan(x)) return 0x7F;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (a >= 464.f) return sign | 0x7E;
  if (a <= 0x1p-10f) return sign;
  int e = 0;
  std::frexp(a, &e);
  --e;  // a = 1.m · 2^e
  if (e < -6) return sign | uint8_t(std::nearbyint(std::ldexp(a, 9)));
  int q = int(std::nearbyint(std::ldexp(a, 3 - e)));  // 1.mmm · 8, in [8, 16]
  if (q == 16) q = 8, ++e;
  return sign | uint8_t((e + 7) << 3) | uint8_t(q - 8);
}

// Every 61st of the 2^32 float bit patterns (both signs, every exponent, NaNs and infinities), and every pattern
// within 64 ulps of each code's value and of each midpoint between codes. (All 2^32 matched when the bit-level
// encoder was written; that sweep takes too long for a unit test.)
TEST(Fp8E4m3, TheBitLevelEncoderMatchesTheDefinition) {
  const auto check = [](uint32_t u) {
    float f = 0;
    std::memcpy(&f, &u, sizeof f);
    const uint8_t got = ops::fp8_e4m3_from_float(f), want = e4m3_by_definition(f);
    if (got != want) ADD_FAILURE() << "bits " << std::hex << u << ": " << int(got) << " != " << int(want);
    return got == want;
  };
  int64_t bad = 0;
  for (uint64_t u = 0; u < (uint64_t(1) << 32) && bad < 5; u += 61) bad += !check(uint32_t(u));
  for (int b = 0; b < 0x7E && bad < 5; ++b) {
    const float lo = ops::fp8_e4m3_to_float(uint8_t(b)), hi = ops::fp8_e4m3_to_float(uint8_t(b + 1));
    for (const float v : {lo, 0.5f * (lo + hi), -lo, -0.5f * (lo + hi)}) {
      uint32_t c = 0;
      std::memcpy(&c, &v, sizeof c);
      for (uint32_t d = c - 64; d != c + 65; ++d) bad += !check(d);
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(Int8Quant, RoundsHalfToEvenAndClamps) {
  EXPECT_EQ(ops::int8_from_float(2.5f), 2);
  EXPECT_EQ(ops::int8_from_float(3.5f), 4);
  EXPECT_EQ(ops::int8_from_float(-2.5f), -2);
  EXPECT_EQ(ops::int8_from_float(126.6f), 127);
  EXPECT_EQ(ops::int8_from_float(127.6f), 127);
  EXPECT_EQ(ops::int8_from_float(-300.f), -127);  // symmetric: -128 is never produced
  EXPECT_NE(test::error_of([] { ops::int8_from_float(std::nanf("")); }).find("NaN"), std::string::npos);
}

TEST(RowQuant, ScalesZeroRowsAndNonFinite) {
  const std::vector<float> w = {0.5f, -1.f, 0.25f, 0.f,  // amax 1
                                0.f,  0.f,  0.f,   0.f};  // a zero row: scale 1, codes 0
  for (ExpertPrecision p : {ExpertPrecision::Fp8, ExpertPrecision::Int8}) {
    std::vector<uint8_t> q(8);
    std::vector<float> s(2), d(8);
    ops::quantise_rows(w.data(), 2, 4, p, q.data(), s.data());
    EXPECT_FLOAT_EQ(s[0], p == ExpertPrecision::Fp8 ? 1.f / 448 : 1.f / 127);
    EXPECT_EQ(s[1], 1.f);
    for (int j = 4; j < 8; ++j) EXPECT_EQ(q[size_t(j)], 0);
    // The row's largest magnitude is the format's largest code: ±448 (e4m3 0xFE for -448) or -127.
    EXPECT_EQ(q[1], p == ExpertPrecision::Fp8 ? 0xFE : uint8_t(int8_t(-127)));
    if (p == ExpertPrecision::Int8) {  // 0.5 · 127 = 63.5 ties to the even 64; 0.25 · 127 = 31.75 rounds to 32
      EXPECT_EQ(int8_t(q[0]), 64);
      EXPECT_EQ(int8_t(q[2]), 32);
    } else {  // 0.5 · 448 = 224 and 0.25 · 448 = 112 are e4m3 values
      EXPECT_EQ(ops::fp8_e4m3_to_float(q[0]), 224.f);
      EXPECT_EQ(ops::fp8_e4m3_to_float(q[2]), 112.f);
    }
    ops::dequantise_rows(q.data(), s.data(), 2, 4, p, d.data());
    const double tol = p == ExpertPrecision::Fp8 ? 1e-6 : 0.5 / 127;  // e4m3 holds these exactly; int8 to s/2
    for (int j = 0; j < 8; ++j) EXPECT_NEAR(d[size_t(j)], w[size_t(j)], tol) << ops::expert_precision_name(p);
    std::vector<float> bad = w;
    bad[6] = std::nanf("");
    const std::string msg = test::error_of([&] { ops::quantise_rows(bad.data(), 2, 4, p, q.data(), s.data(), "w1"); });
    EXPECT_NE(msg.find("w1: row 1 column 2"), std::string::npos) << msg;
    bad[6] = std::numeric_limits<float>::infinity();
    EXPECT_NE(test::error_of([&] { ops::fake_quantise_rows(bad.data(), 2, 4, p); }).find("non-finite"),
              std::string::npos);
  }
}

// The dequantised error bound: e4m3 keeps 4 significant bits (relative error ≤ 2^-4 for normals; below 2^-6 · s the
// subnormal spacing 2^-9 · s, half of it absolute), int8 an absolute error ≤ s/2; plus fp32 roundings (2^-22 relative).
// Fake quant is what the quantised kernels compute with: quantising its result again gives the same codes.
TEST(RowQuant, ErrorBoundAndIdempotentCodes) {
  Rng rng(7);
  const int64_t rows = 64, cols = 96;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = float((2 * rng.uniform() - 1) * std::exp(3 * rng.uniform()));
  for (ExpertPrecision p : {ExpertPrecision::Fp8, ExpertPrecision::Int8}) {
    std::vector<float> d = w, s(static_cast<size_t>(rows)), s2(static_cast<size_t>(rows));
    std::vector<uint8_t> q(w.size()), q2(w.size());
    ops::fake_quantise_rows(d.data(), rows, cols, p, q.data(), s.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const size_t i = size_t(r * cols + j);
        const double err = std::fabs(double(d[i]) - w[i]), sc = s[size_t(r)];
        const double bound = p == ExpertPrecision::Fp8 ? std::ldexp(std::fabs(w[i]), -4) + std::ldexp(sc, -10)
                                                       : 0.5 * sc;
        EXPECT_LE(err, bound * (1 + 1e-6) + std::ldexp(std::fabs(w[i]), -22)) << "row " << r << " col " << j;
      }
    std::vector<float> again = d;
    ops::quantise_rows(again.data(), rows, cols, p, q2.data(), s2.data());
    EXPECT_EQ(q2, q) << ops::expert_precision_name(p);
    for (int64_t r = 0; r < rows; ++r) EXPECT_NEAR(s2[size_t(r)], s[size_t(r)], 4e-7 * s[size_t(r)]);
  }
}

TEST(ExpertPrecisionName, ParsesAndRefuses) {
  EXPECT_EQ(ops::parse_expert_precision("fp8"), ExpertPrecision::Fp8);
  EXPECT_EQ(ops::parse_expert_precision("int8"), ExpertPrecision::Int8);
  EXPECT_EQ(ops::parse_expert_precision("bf16"), ExpertPrecision::Bf16);
  EXPECT_STREQ(ops::expert_precision_name(ExpertPrecision::Int8), "int8");
  EXPECT_EQ(test::error_of([] { ops::parse_expert_precision("fp4"); }),
            "--expert-precision fp4: expected bf16, fp8 or int8");
}

}  // namespace
}  // namespace wattmoe
