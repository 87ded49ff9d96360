#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

namespace wattmoe {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Tensor Tensor::zeros(DType t, Shape shape) {
  for (auto d : shape) WATTMOE_CHECK(d >= 0, "negative dim in {}", shape_str(shape));
  Tensor r;
  r.dtype_ = t;
  r.shape_ = std::move(shape);
  size_t bytes = std::max<size_t>(r.nbytes(), 1);
  void* p = std::calloc(bytes, 1);
  WATTMOE_REQUIRE(p != nullptr, "out of memory allocating {} bytes", bytes);
  r.data_ = p;
  r.keep_ = std::shared_ptr<void>(p, std::free);
  return r;
}

Tensor Tensor::view(DType t, Shape shape, void* data, std::shared_ptr<void> keepalive, Device dev) {
  Tensor r;
  r.dtype_ = t;
  r.shape_ = std::move(shape);
  r.data_ = data;
  r.keep_ = std::move(keepalive);
  r.device_ = dev;
  return r;
}

Tensor Tensor::reshape(Shape s) const {
  WATTMOE_CHECK(shape_numel(s) == numel(), "reshape {} -> {}", shape_str(shape_), shape_str(s));
  Tensor r = *this;
  r.shape_ = std::move(s);
  return r;
}

Tensor Tensor::clone() const {
  WATTMOE_CHECK(device_ == Device::CPU);
  Tensor r = zeros(dtype_, shape_);
  if (nbytes()) std::memcpy(r.data_, data_, nbytes());
  return r;
}

Tensor Tensor::to(DType t) const {
  WATTMOE_CHECK(device_ == Device::CPU);
  if (t == dtype_) return clone();
  Tensor r = zeros(t, shape_);
  if (t == DType::F64) {
    convert_to_f64(dtype_, data_, r.data<double>(), size_t(numel()));
  } else {
    std::vector<float> tmp = to_f32_vector();
    convert_from_f32(tmp.data(), t, r.data_, tmp.size());
  }
  return r;
}

std::vector<float> Tensor::to_f32_vector() const {
  WATTMOE_CHECK(device_ == Device::CPU);
  std::vector<float> v(static_cast<size_t>(numel()));
  convert_to_f32(dtype_, data_, v.data(), v.size());
  return v;
}

std::vector<double> Tensor::to_f64_vector() const {
  WATTMOE_CHECK(device_ == Device::CPU);
  std::vector<double> v(static_cast<size_t>(numel()));
  convert_to_f64(dtype_, data_, v.data(), v.size());
  return v;
}

}  // namespace wattmoe
