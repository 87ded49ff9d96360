#include "model/optimizer.h"

#include <cmath>

#include "io/safetensors.h"
#include "core/parallel_spans.h"

namespace wattmoe {

AdamW::AdamW(const ParamLayout& layout, AdamWConfig cfg)
    : layout_(layout), cfg_(cfg), m_(size_t(layout.total()), 0.f), v_(size_t(layout.total()), 0.f),
      decay_(weight_decay_mask(layout)), runs_{{0, layout.total()}} {}

std::vector<uint8_t> weight_decay_mask(const ParamLayout& layout) {
  std::vector<uint8_t> decay(size_t(layout.total()), 0);
  for (const ParamSpec& s : layout.specs())
    if (s.is_matrix()) std::fill(decay.begin() + s.offset, decay.begin() + s.offset + s.numel, 1);
  return decay;
}

void AdamW::set_trainable(std::vector<uint8_t> mask) {
  WATTMOE_CHECK(int64_t(mask.size()) == layout_.total());
  runs_.clear();
  for (int64_t i = 0, n = int64_t(mask.size()); i < n;) {
    if (!mask[size_t(i)]) {
      ++i;
      continue;
    }
    const int64_t begin = i;
    while (i < n && mask[size_t(i)]) ++i;
    runs_.emplace_back(begin, i);
  }
}

void AdamW::step(float* p, const float* g, double lr) {
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double c1 = 1.0 - std::pow(b1, double(t_)), c2 = 1.0 - std::pow(b2, double(t_));
  const float step_size = float(lr / c1), bias2 = float(1.0 / std::sqrt(c2)), eps = float(cfg_.eps);
  const float decay = float(1.0 - lr * cfg_.weight_decay);
  span_for_each(runs_, [&](int64_t begin, int64_t end, int64_t) {  // elementwise: the same on any thread count
    for (int64_t i = begin; i < end; ++i) {
      m_[i] = float(b1) * m_[i] + float(1 - b1) * g[i];
      v_[i] = float(b2) * v_[i] + float(1 - b2) * g[i] * g[i];
      if (decay_[i]) p[i] *= decay;
      p[i] -= step_size * m_[i] / (std::sqrt(v_[i]) * bias2 + eps);
    }
  });
}

void AdamW::save(const std::string& path) const { save_adam_moments(path, layout_, m_.data(), v_.data(), t_); }

void AdamW::load(const std::string& path) { t_ = load_adam_moments(path, layout_, m_.data(), v_.data()); }

void save_adam_moments(const std::string& path, const ParamLayout& layout, const float* m, const float* v,
                       int64_t step) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const ParamSpec& s : layout.specs()) {
    out.emplace_back("exp_avg." + s.name, Tensor::from_vector(std::vector<float>(m + s.offset, m + s.offset + s.numel), s.shape));
    out.emplace_back("exp_avg_sq." + s.name, Tensor::from_vector(std::vector<float>(v + s.offset, v + s.offset + s.numel), s.shape));
  }
  write_safetensors(path, out, {{"step", std::to_string(step)}});
}

int64_t load_adam_moments(const std::string& path, const ParamLayout& layout, float* m, float* v) {
  SafetensorsFile f = SafetensorsFile::open(path);
  auto it = f.metadata().find("step");
  WATTMOE_REQUIRE(it != f.metadata().end(), "{}: optimizer state has no step in its metadata", path);
  const int64_t step = std::stoll(it->second);
  for (const ParamSpec& s : layout.specs()) {
    for (auto [prefix, buf] : {std::pair{"exp_avg.", m}, std::pair{"exp_avg_sq.", v}}) {
      const std::string name = prefix + s.name;
      WATTMOE_REQUIRE(f.has(name), "{}: missing optimizer tensor {}", path, name);
      Tensor t = f.get(name);
      WATTMOE_REQUIRE(t.dtype() == DType::F32 && t.shape() == s.shape, "{}: {} has {} {}, expected F32 {}", path, name,
                      dtype_name(t.dtype()), shape_str(t.shape()), shape_str(s.shape));
      std::copy(t.data<float>(), t.data<float>() + s.numel, buf + s.offset);
    }
  }
  return step;
}

double clip_grad_norm(float* g, int64_t n, double max_norm) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(g[i]) * double(g[i]);
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / (norm + 1e-6));
    for (int64_t i = 0; i < n; ++i) g[i] *= s;
  }
  return norm;
}

}  // namespace wattmoe
