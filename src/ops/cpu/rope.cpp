#include "ops/rope.h"

#include <cmath>

#include "core/error.h"

namespace wattmoe::ops {

RopeTable rope_table(int64_t pos0, int64_t n_pos, int64_t head_dim, double theta) {
  WATTMOE_CHECK(head_dim % 2 == 0, "head_dim {} must be even", head_dim);
  RopeTable t;
  t.pos0 = pos0, t.n_pos = n_pos, t.half = head_dim / 2;
  t.cos.resize(size_t(n_pos * t.half));
  t.sin.resize(t.cos.size());
  for (int64_t i = 0; i < t.half; ++i) {
    // transformers: inv_freq = 1 / base ** (arange(0, d, 2).float() / d), all float32.
    float expo = float(2 * i) / float(head_dim);
    float inv_freq = 1.0f / std::pow(float(theta), expo);
    for (int64_t p = 0; p < n_pos; ++p) {
      float angle = float(pos0 + p) * inv_freq;
      t.cos[size_t(p * t.half + i)] = std::cos(double(angle));
      t.sin[size_t(p * t.half + i)] = std::sin(double(angle));
    }
  }
  return t;
}

template <class T>
void rope_apply(T* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t stride, const RopeTable& tab,
                int64_t pos0, bool inverse) {
  const int64_t h = head_dim / 2;
  WATTMOE_CHECK(h == tab.half && pos0 >= tab.pos0 && pos0 + n_tokens <= tab.pos0 + tab.n_pos);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const double* c = tab.cos.data() + (pos0 - tab.pos0 + t) * h;
    const double* s = tab.sin.data() + (pos0 - tab.pos0 + t) * h;
    for (int64_t hd = 0; hd < n_heads; ++hd) {
      T* v = x + t * stride + hd * head_dim;
      for (int64_t i = 0; i < h; ++i) {
        T a = v[i], b = v[i + h], ci = T(c[i]), si = inverse ? T(-s[i]) : T(s[i]);
        v[i] = a * ci - b * si;
        v[i + h] = b * ci + a * si;
      }
    }
  }
}

template void rope_apply<float>(float*, int64_t, int64_t, int64_t, int64_t, const RopeTable&, int64_t, bool);
template void rope_apply<double>(double*, int64_t, int64_t, int64_t, int64_t, const RopeTable&, int64_t, bool);

}  // namespace wattmoe::ops
