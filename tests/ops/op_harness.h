// Op test harness in the spirit of llama.cpp's test-backend-ops.
//
// Each op is described by a small case struct (shapes and params) that says what its inputs and outputs are and
// how to run forward and backward in any precision T (float or double). run_op_case() then, from a fixed seed:
//   0. checks every output, saved buffer and gradient for NaN/inf before comparing anything;
//   1. (test) runs forward and backward in float and in double on the same (float-representable) inputs and compares
//      them with a normalized error, max|f − d| / max|d|, against a tolerance the case derives from the reduction
//      length (the reason is written next to each tolerance);
//   2. (grad) checks backward in double against central finite differences of the whole forward of a random linear
//      functional L = Σ r ⊙ f(x), for every input that has a gradient (activations and weights alike);
//   3. (accumulate) pre-fills the gradient buffers with non-zero values and checks that backward adds into them
//      (or, for ops documented to overwrite, that the pre-filled values are ignored);
//   4. for ops whose gradient pointers may be null, checks that each gradient alone equals the full run bitwise.
//
// A case struct provides (see OpCaseBase for the defaults):
//   std::string name() const;
//   std::vector<InputSpec> inputs() const;          // name, numel, init range, has a gradient
//   std::vector<int64_t> outputs() const;           // numel of each output
//   std::vector<int64_t> saved() const;             // numel of buffers forward saves for backward
//   BwdMode mode() const; bool nullable_grads() const;
//   double fwd_tol() const, bwd_tol() const;        // float vs double (normalized max error)
//   double grad_tol() const, fd_step() const;       // gradient check in double
//   template <class T> void forward(const Bufs<T>& in, Bufs<T>& out, Bufs<T>& saved) const;
//   template <class T> void backward(const Bufs<T>& in, const Bufs<T>& out, const Bufs<T>& saved,
//                                    const Bufs<T>& dout, const std::vector<T*>& din) const;  // din[i] may be null
#pragma once
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/rng.h"

namespace wattmoe::test {

template <class T>
using Bufs = std::vector<std::vector<T>>;

struct InputSpec {
  std::string name;
  int64_t numel = 0;
  double lo = -1, hi = 1;  // uniform init range
  bool grad = true;        // backward computes a gradient for this input
};

enum class BwdMode {
  Accumulates,  // backward adds into the gradient buffers (the documented contract of most ops)
  Overwrites,   // backward overwrites them (the losses)
  Unchecked,    // backward is written in the test itself (e.g. the gradient of logsumexp is softmax)
  None,         // forward only (gemm)
};

// Unit roundoff of fp32 (round to nearest).
constexpr double kU32 = 0x1p-24;

// float-vs-double tolerance for values produced by sums of K terms plus a few elementwise functions.
// The classic bound on a recursively summed dot product is γ_K ≈ K·u relative to Σ|terms|; we normalize by the
// largest |output|, which for random signs is ~√K smaller than Σ|terms| of a typical output but never smaller than
// Σ|terms|/K, so 4·K·u covers it with headroom; `ulps` adds the rounding of exp/sqrt/division/conversions.
inline double fp32_tol(double K, double ulps = 16) { return kU32 * (4.0 * K + ulps); }

struct OpCaseBase {
  std::vector<int64_t> saved() const { return {}; }
  BwdMode mode() const { return BwdMode::Accumulates; }
  bool nullable_grads() const { return false; }
  // Central differences in double with h = 1e-6: truncation error h²·|f'''|/6 ~ 1e-13 and rounding error
  // ε·|L|/h ~ 1e-10·|L| are both far below 1e-6 of the gradients (O(0.1..1)) these cases produce.
  double fd_step() const { return 1e-6; }
  double grad_tol() const { return 1e-6; }
  int64_t max_fd_coords() const { return 512; }  // per input; larger inputs are sampled
};

// Worst |a − b| normalized by max|b| (b is the reference); 0/0 counts as 0.
template <class A, class B>
double norm_err(const std::vector<A>& a, const std::vector<B>& b, size_t* worst = nullptr) {
  double num = 0, den = 0;
  size_t w = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = std::abs(double(a[i]) - double(b[i]));
    if (d > num) num = d, w = i;
    den = std::max(den, std::abs(double(b[i])));
  }
  if (worst) *worst = w;
  if (num == 0) return 0;
  return den > 0 ? num / den : INFINITY;
}

// True when every value is finite; otherwise records a failure naming the first bad index.
template <class T>
bool all_finite(const std::vector<T>& v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(double(v[i]))) {
      ADD_FAILURE() << what << "[" << i << "] = " << double(v[i]) << " is not finite";
      return false;
    }
  return true;
}

template <class T>
Bufs<T> zeros_like_sizes(const std::vector<int64_t>& sizes) {
  Bufs<T> b;
  for (int64_t n : sizes) b.emplace_back(size_t(n), T(0));
  return b;
}

template <class To, class From>
Bufs<To> convert(const Bufs<From>& in) {
  Bufs<To> out;
  for (const auto& v : in) out.emplace_back(v.begin(), v.end());
  return out;
}

template <class T>
std::vector<T*> grad_ptrs(Bufs<T>& g, const std::vector<InputSpec>& specs, int only = -1) {
  std::vector<T*> p(g.size(), nullptr);
  for (size_t i = 0; i < g.size(); ++i)
    if (specs[i].grad && (only < 0 || int(i) == only)) p[i] = g[i].data();
  return p;
}

template <class C, class T>
void run_forward(const C& c, const Bufs<T>& in, Bufs<T>& out, Bufs<T>& saved) {
  out = zeros_like_sizes<T>(c.outputs());
  saved = zeros_like_sizes<T>(c.saved());
  c.template forward<T>(in, out, saved);
}

// L = Σ_o Σ_i r[o][i] · out[o][i], in double.
template <class C>
double functional(const C& c, const Bufs<double>& in, const Bufs<double>& r) {
  Bufs<double> out, saved;
  run_forward<C, double>(c, in, out, saved);
  double L = 0;
  for (size_t o = 0; o < out.size(); ++o)
    for (size_t i = 0; i < out[o].size(); ++i) L += r[o][i] * out[o][i];
  return L;
}

template <class C>
void run_op_case(const C& c, uint64_t seed = 0x5eed) {
  SCOPED_TRACE(c.name());
  const std::vector<InputSpec> specs = c.inputs();
  Rng rng(seed);

  // Inputs are drawn in double and rounded to float, so float and double runs see identical values.
  Bufs<double> in_d;
  for (const InputSpec& s : specs) {
    std::vector<double> v(size_t(s.numel));
    for (auto& x : v) x = double(float(s.lo + (s.hi - s.lo) * rng.uniform()));
    in_d.push_back(std::move(v));
  }
  const Bufs<float> in_f = convert<float>(in_d);

  // 0 + 1. forward: finite, then float vs double.
  Bufs<double> out_d, saved_d;
  Bufs<float> out_f, saved_f;
  run_forward<C, double>(c, in_d, out_d, saved_d);
  run_forward<C, float>(c, in_f, out_f, saved_f);
  for (size_t o = 0; o < out_d.size(); ++o) {
    ASSERT_TRUE(all_finite(out_d[o], fmt::format("double out{}", o)));
    ASSERT_TRUE(all_finite(out_f[o], fmt::format("float out{}", o)));
  }
  for (size_t s = 0; s < saved_d.size(); ++s) {
    ASSERT_TRUE(all_finite(saved_d[s], fmt::format("double saved{}", s)));
    ASSERT_TRUE(all_finite(saved_f[s], fmt::format("float saved{}", s)));
  }
  for (size_t o = 0; o < out_d.size(); ++o) {
    size_t w = 0;
    const double e = norm_err(out_f[o], out_d[o], &w);
    EXPECT_LE(e, c.fwd_tol()) << "forward float vs double, output " << o << " worst at " << w << ": "
                              << out_f[o][w] << " vs " << out_d[o][w];
  }
  if (c.mode() == BwdMode::None) return;

  // Backward with a random upstream gradient r (the same r defines the functional of the gradient check).
  Bufs<double> r_d;
  for (int64_t n : c.outputs()) {
    std::vector<double> v(static_cast<size_t>(n));
    for (auto& x : v) x = double(float(rng.uniform() * 2 - 1));
    r_d.push_back(std::move(v));
  }
  const Bufs<float> r_f = convert<float>(r_d);
  std::vector<int64_t> in_sizes;
  for (const auto& s : specs) in_sizes.push_back(s.numel);
  Bufs<double> g_d = zeros_like_sizes<double>(in_sizes);
  Bufs<float> g_f = zeros_like_sizes<float>(in_sizes);
  c.template backward<double>(in_d, out_d, saved_d, r_d, grad_ptrs(g_d, specs));
  c.template backward<float>(in_f, out_f, saved_f, r_f, grad_ptrs(g_f, specs));
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].grad) continue;
    ASSERT_TRUE(all_finite(g_d[i], "double d" + specs[i].name));
    ASSERT_TRUE(all_finite(g_f[i], "float d" + specs[i].name));
    size_t w = 0;
    const double e = norm_err(g_f[i], g_d[i], &w);
    EXPECT_LE(e, c.bwd_tol()) << "backward float vs double, d" << specs[i].name << " worst at " << w << ": "
                              << g_f[i][w] << " vs " << g_d[i][w];
  }

  // 2. gradient check in double against central finite differences of the whole forward.
  const double h = c.fd_step();
  bool any_nonzero = false;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].grad) continue;
    std::vector<size_t> coords(size_t(specs[i].numel));
    std::iota(coords.begin(), coords.end(), size_t(0));
    if (int64_t(coords.size()) > c.max_fd_coords()) {  // a fixed random sample
      for (size_t j = 0; j < size_t(c.max_fd_coords()); ++j)
        std::swap(coords[j], coords[j + size_t(rng.below(coords.size() - j))]);
      coords.resize(size_t(c.max_fd_coords()));
    }
    std::vector<double> analytic, numeric;
    Bufs<double> x = in_d;
    for (size_t j : coords) {
      const double x0 = x[i][j];
      x[i][j] = x0 + h;
      const double lp = functional(c, x, r_d);
      x[i][j] = x0 - h;
      const double lm = functional(c, x, r_d);
      x[i][j] = x0;
      numeric.push_back((lp - lm) / (2 * h));
      analytic.push_back(g_d[i][j]);
    }
    size_t w = 0;
    const double e = norm_err(analytic, numeric, &w);
    EXPECT_LE(e, c.grad_tol()) << "gradient check of d" << specs[i].name << " (" << coords.size()
                               << " coordinates), worst at " << coords[w] << ": analytic " << analytic[w]
                               << " vs finite difference " << numeric[w];
    for (double v : numeric) any_nonzero |= v != 0;
  }
  EXPECT_TRUE(any_nonzero) << "every gradient is identically zero: the check would prove nothing";

  // 3. accumulate (or overwrite) semantics, in both precisions.
  auto check_semantics = [&]<class T>(const Bufs<T>& in, const Bufs<T>& out, const Bufs<T>& saved,
                                      const Bufs<T>& r, const Bufs<T>& g0, double tol, const char* prec) {
    Bufs<T> pre = zeros_like_sizes<T>(in_sizes);
    for (size_t i = 0; i < pre.size(); ++i)
      for (auto& v : pre[i]) v = T(float(rng.uniform() * 4 - 2));
    Bufs<T> g = pre;
    c.template backward<T>(in, out, saved, r, grad_ptrs(g, specs));
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!specs[i].grad) continue;
      if (c.mode() == BwdMode::Accumulates) {
        std::vector<double> want(pre[i].size()), got(pre[i].begin(), pre[i].end());
        double scale = 0;
        for (size_t j = 0; j < want.size(); ++j) {
          want[j] = double(pre[i][j]) + double(g0[i][j]);
          got[j] = double(g[i][j]);
          scale = std::max({scale, std::abs(double(pre[i][j])), std::abs(double(g0[i][j]))});
        }
        double err = 0;
        for (size_t j = 0; j < want.size(); ++j) err = std::max(err, std::abs(got[j] - want[j]));
        EXPECT_LE(err, tol * scale) << prec << " d" << specs[i].name
                                    << ": backward must ADD into a pre-filled gradient buffer";
      } else if (c.mode() == BwdMode::Overwrites) {
        EXPECT_EQ(0, std::memcmp(g[i].data(), g0[i].data(), sizeof(T) * g[i].size()))
            << prec << " d" << specs[i].name << ": backward must OVERWRITE the gradient buffer";
      }
    }
  };
  if (c.mode() != BwdMode::Unchecked) {
    // The pre-filled values are O(1): adding them changes rounding by a few ulps of O(1) (double: 1e-12 is
    // far above that and far below any missing or doubled term; float: the case's backward tolerance).
    check_semantics(in_d, out_d, saved_d, r_d, g_d, 1e-12, "double");
    check_semantics(in_f, out_f, saved_f, r_f, g_f, c.bwd_tol(), "float");
  }

  // 4. a gradient computed alone (the others null) equals the full run bitwise.
  if (c.nullable_grads()) {
    for (size_t i = 0; i < specs.size(); ++i) {
      if (!specs[i].grad) continue;
      Bufs<double> g1 = zeros_like_sizes<double>(in_sizes);
      c.template backward<double>(in_d, out_d, saved_d, r_d, grad_ptrs(g1, specs, int(i)));
      EXPECT_EQ(0, std::memcmp(g1[i].data(), g_d[i].data(), sizeof(double) * g1[i].size()))
          << "d" << specs[i].name << " computed alone differs from the full backward";
    }
  }
}

}  // namespace wattmoe::test
