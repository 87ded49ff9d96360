// exp for the elementwise hot loops of the CPU ops (SwiGLU, attention softmax), written without calls or branches
// so that the compiler vectorises the loops around it; std::exp is a call per element and was ~10% of a step.
//
// float: Cody–Waite reduction x = n·ln2 + r (|r| ≤ ln2/2) and Cephes' degree-6 polynomial for e^r, evaluated
// without FMA (the same bits on every x86-64 build). Relative error within 2 ulp of the true value on the normal
// range; results below 2^-125 (x < −86.64) flush to 0, x > ln(FLT_MAX) gives +inf, NaN stays NaN.
// double: std::exp (gradient checks run in double and want the reference).
// The same input gives the same output on every thread and every call, so results stay bitwise reproducible.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

// Marks a function to be built twice, for AVX2 and for the x86-64 baseline, the loader picking one per machine (GCC
// target_clones). Without FMA contraction (off in ISO C++ mode) both do the same float operations per element, so
// they give the same bits; only loops without reductions across elements should use it.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define WATTMOE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WATTMOE_CLONES
#endif

namespace wattmoe::ops {

// a if c else b, as bit operations: a float ternary would become a branch (GCC does not speculate float arithmetic
// under its default -ftrapping-math) and keep the loop around it from vectorising.
inline float select_bits(bool c, float a, float b) {
  const uint32_t m = 0u - uint32_t(c);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(a) & m) | (std::bit_cast<uint32_t>(b) & ~m));
}

inline float exp_fast(float x) {
  constexpr float kHi = 88.72283905206835f;  // ln(FLT_MAX)
  constexpr float kLo = -86.64339979f;       // ln(2^-125): 2^(n-1) below stays a normal float
  float xc = select_bits(x > kHi, kHi, x);
  xc = select_bits(xc < kLo, kLo, xc);       // NaN compares false and passes through
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2), via 1.5·2^23
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n as 2^(n-1)·2 so that n = 128 (x near ln(FLT_MAX)) still has an exponent field.
  // (A NaN input makes n NaN; converting that to int is undefined, so it converts 0 instead: y is NaN anyway via p.)
  const float n_int = select_bits(n != n, 0.0f, n);
  const float half_scale = std::bit_cast<float>(uint32_t(int32_t(n_int) + 126) << 23);
  const float y = (p * half_scale) * 2.0f;
  return select_bits(x < kLo, 0.0f, select_bits(x > kHi, std::bit_cast<float>(0x7f800000u), y));
}

template <class T>
inline T vexp(T x) {
  return std::exp(x);
}
template <>
inline float vexp<float>(float x) {
  return exp_fast(x);
}

}  // namespace wattmoe::ops
