#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe {

namespace {
struct Info {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr Info kInfo[] = {{DType::F64, "F64", 8},      {DType::F32, "F32", 4},         {DType::F16, "F16", 2},
                          {DType::BF16, "BF16", 2},    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
                          {DType::I64, "I64", 8},      {DType::I32, "I32", 4},         {DType::I16, "I16", 2},
                          {DType::I8, "I8", 1},        {DType::U8, "U8", 1},           {DType::BOOL, "BOOL", 1}};
const Info& info(DType t) {
  for (const auto& i : kInfo)
    if (i.t == t) return i;
  WATTMOE_CHECK(false, "unknown dtype {}", int(t));
}
}  // namespace

size_t dtype_size(DType t) { return info(t).size; }
std::string_view dtype_name(DType t) { return info(t).name; }
bool dtype_from_name(std::string_view name, DType* out) {
  for (const auto& i : kInfo)
    if (i.name == name) {
      *out = i.t;
      return true;
    }
  return false;
}
bool dtype_is_float(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8_E4M3 ||
         t == DType::F8_E5M2;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: value = man * 2^-24
      float f = std::ldexp(float(man), -24);
      return sign ? -f : f;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = int32_t((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return uint16_t(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return uint16_t(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return uint16_t(sign);
    man |= 0x800000;
    uint32_t shift = uint32_t(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(exp) << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;  // may carry into the exponent: correct
  return uint16_t(half);
}

float f8e4m3_to_f32(uint8_t v) {  // e4m3fn: no infinities, 0x7f/0xff are NaN
  uint32_t sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
  if (exp == 0xf && man == 7) return NAN;
  float f = exp == 0 ? std::ldexp(float(man), -9) : std::ldexp(1.0f + float(man) / 8.0f, int(exp) - 7);
  return sign ? -f : f;
}
float f8e5m2_to_f32(uint8_t v) { return f16_to_f32(uint16_t(v) << 8); }

namespace {
template <class D>
void convert_to(DType t, const void* src, D* dst, size_t n) {
  switch (t) {
    case DType::F64: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const double*>(src)[i]); break;
    case DType::F32: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const float*>(src)[i]); break;
    case DType::F16: for (size_t i = 0; i < n; ++i) dst[i] = D(f16_to_f32(static_cast<const uint16_t*>(src)[i])); break;
    case DType::BF16: for (size_t i = 0; i < n; ++i) dst[i] = D(bf16_to_f32(static_cast<const uint16_t*>(src)[i])); break;
    case DType::F8_E4M3: for (size_t i = 0; i < n; ++i) dst[i] = D(f8e4m3_to_f32(static_cast<const uint8_t*>(src)[i])); break;
    case DType::F8_E5M2: for (size_t i = 0; i < n; ++i) dst[i] = D(f8e5m2_to_f32(static_cast<const uint8_t*>(src)[i])); break;
    case DType::I64: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const int64_t*>(src)[i]); break;
    case DType::I32: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const int32_t*>(src)[i]); break;
    case DType::I16: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const int16_t*>(src)[i]); break;
    case DType::I8: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const int8_t*>(src)[i]); break;
    case DType::U8:
    case DType::BOOL: for (size_t i = 0; i < n; ++i) dst[i] = D(static_cast<const uint8_t*>(src)[i]); break;
  }
}
}  // namespace

void convert_to_f32(DType t, const void* src, float* dst, size_t n) { convert_to(t, src, dst, n); }
void convert_to_f64(DType t, const void* src, double* dst, size_t n) { convert_to(t, src, dst, n); }

void convert_from_f32(const float* src, DType t, void* dst, size_t n) {
  switch (t) {
    case DType::F64: for (size_t i = 0; i < n; ++i) static_cast<double*>(dst)[i] = src[i]; break;
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::F16: for (size_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]); break;
    case DType::BF16: for (size_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]); break;
    default: fail("cannot convert float to {}", dtype_name(t));
  }
}

}  // namespace wattmoe
