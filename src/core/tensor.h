// Tensor: dtype + device + shape over a contiguous row-major buffer. The buffer is shared (copies alias);
// it is owned memory or a view into something kept alive (an mmap'd safetensors file, say).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace wattmoe {

enum class Device : uint8_t { CPU, CUDA };
using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

class Tensor {
 public:
  Tensor() = default;
  // Owned, zero-filled CPU memory.
  static Tensor zeros(DType t, Shape shape);
  // A view of memory someone else owns; `keepalive` holds it (may be null if the caller guarantees lifetime).
  static Tensor view(DType t, Shape shape, void* data, std::shared_ptr<void> keepalive, Device dev = Device::CPU);
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, Shape shape) {
    WATTMOE_CHECK(int64_t(v.size()) == shape_numel(shape));
    Tensor t = zeros(dtype_of<T>(), std::move(shape));
    std::copy(v.begin(), v.end(), t.data<T>());
    return t;
  }

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t size(int d) const { return shape_.at(d < 0 ? d + ndim() : d); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T>
  T* data() {
    WATTMOE_CHECK(dtype_ == dtype_of<T>(), "tensor is {}", dtype_name(dtype_));
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    WATTMOE_CHECK(dtype_ == dtype_of<T>(), "tensor is {}", dtype_name(dtype_));
    return static_cast<const T*>(data_);
  }

  Tensor reshape(Shape s) const;      // same buffer, same numel
  Tensor clone() const;               // deep copy (CPU)
  Tensor to(DType t) const;           // CPU conversion through float (or double for F64)
  std::vector<float> to_f32_vector() const;
  std::vector<double> to_f64_vector() const;

 private:
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> keep_;
};

}  // namespace wattmoe
