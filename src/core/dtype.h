// Element types as they appear in safetensors files, with conversions between the float formats.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace wattmoe {

enum class DType : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // the safetensors spelling: "F32", "BF16", ...
bool dtype_from_name(std::string_view name, DType* out);
bool dtype_is_float(DType t);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, NaN kept quiet (what torch does).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f8e4m3_to_f32(uint8_t v);
float f8e5m2_to_f32(uint8_t v);

// Converts n elements of type `src_t` at src to float (or double) at dst. Integer types convert by value.
void convert_to_f32(DType src_t, const void* src, float* dst, size_t n);
void convert_to_f64(DType src_t, const void* src, double* dst, size_t n);
// Converts n floats into `dst_t` storage (float types only).
void convert_from_f32(const float* src, DType dst_t, void* dst, size_t n);

}  // namespace wattmoe
